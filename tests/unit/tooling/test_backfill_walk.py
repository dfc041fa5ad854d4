"""The backfill's pairing walk: a sorted listing in, each image with the sidecar the function takes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backdrop.backfill.walk import Listed, PairingWalk
from backdrop_fn import keys


def listing(*names: str) -> list[Listed]:
    """As S3 lists them: in UTF-8 byte order."""
    return [Listed(name, f"etag-{name}", 1) for name in sorted(names, key=lambda name: name.encode())]


def paired(*names: str) -> dict[str, str | None]:
    return {
        found.image.key: found.sidecar.key if found.sidecar else None
        for found in PairingWalk().pairs(listing(*names))
    }


def test_an_image_takes_its_own_json_before_its_stems():
    assert paired("a.jpg", "a.jpg.json", "a.json") == {"a.jpg": "a.jpg.json"}


def test_the_stem_sidecar_is_found_whichever_side_of_the_image_it_sorts():
    # "a.JPG" sorts before "a.json", "a.jpg" and "a.png" after it, "a.webp" far after.
    assert paired("a.JPG", "a.jpg", "a.png", "a.webp", "a.json") == {
        "a.JPG": "a.json",
        "a.jpg": "a.json",
        "a.png": "a.json",
        "a.webp": "a.json",
    }


def test_an_image_without_a_sidecar_is_found_alone():
    assert paired("a.png", "b.png.json") == {"a.png": None}


def test_sidecars_without_an_image_and_other_objects_are_counted_not_paired():
    walk = PairingWalk()
    found = list(walk.pairs(listing("a.png", "a.png.json", "lonely.json", "notes.txt", "folder/", "b.JSON")))
    assert [f.image.key for f in found] == ["a.png"]
    assert (walk.counts.objects, walk.counts.images, walk.counts.sidecars) == (6, 1, 2)
    assert walk.counts.sidecars_without_image == 1
    assert walk.counts.ignored == 3  # a .JSON is no sidecar: the function only reads ".json"


def test_a_folder_between_an_image_and_its_stem_sidecar_holds_only_that_image():
    # Every key under "a.jpg/" sorts between "a.jpg" and "a.json".
    folder = [f"a.jpg/{number:05d}.txt" for number in range(5000)]
    walk = PairingWalk()
    found = list(walk.pairs(listing("a.jpg", *folder, "a.json")))
    assert [(f.image.key, f.sidecar.key if f.sidecar else None) for f in found] == [("a.jpg", "a.json")]
    assert walk.counts.most_held <= 2


def test_what_the_walk_holds_does_not_grow_with_the_listing():
    def shop(pairs: int) -> list[Listed]:
        names = [f"shop/{number:06d}.{ext}" for number in range(pairs) for ext in ("png", "png.json")]
        names += [f"catalogue/{number:06d}.jpg" for number in range(pairs // 10)]  # waiting images
        names += [f"catalogue/{number:06d}.json" for number in range(pairs // 10)]  # their stem sidecars
        return listing(*names)

    small, large = PairingWalk(), PairingWalk()
    assert sum(1 for _ in small.pairs(shop(1_000))) == 1_100
    assert sum(1 for _ in large.pairs(shop(50_000))) == 55_000
    assert large.counts.most_held == small.counts.most_held <= 3


# Names made of the pieces that matter to the order: dots, slashes, letters either side of "j" and
# "J", and the extensions themselves, so that stems nest in one another and interleave.
STEMS = st.lists(
    st.sampled_from(["a", "b", "A", ".", "/", "-", ".k", "jp", "json"]), min_size=1, max_size=4
).map("".join)
SUFFIXES = st.sampled_from(
    ["", ".jpg", ".JPG", ".jpeg", ".png", ".PNG", ".webp", ".json", ".jpg.json", ".png.json", ".webp.json"]
)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.tuples(STEMS, SUFFIXES), max_size=30))
def test_the_walk_pairs_any_listing_as_the_function_would(names: set[tuple[str, str]]):
    bucket = {stem + suffix for stem, suffix in names}
    expected: dict[str, str | None] = {}
    for key in bucket:
        if keys.classify(key) is keys.KeyKind.IMAGE:
            expected[key] = next((c for c in keys.sidecar_candidates(key) if c in bucket), None)
    walk = PairingWalk()
    assert paired_by(walk, bucket) == expected
    sidecars = {key for key in bucket if keys.classify(key) is keys.KeyKind.SIDECAR}
    assert walk.counts.sidecars_without_image == len(sidecars - set(expected.values()))


def paired_by(walk: PairingWalk, bucket: set[str]) -> dict[str, str | None]:
    return {
        found.image.key: found.sidecar.key if found.sidecar else None
        for found in walk.pairs(listing(*bucket))
    }
