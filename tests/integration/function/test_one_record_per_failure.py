"""One failure, one DLQ record: however many events meet it (real handler, moto server)."""

from __future__ import annotations

from tests.integration.conftest import INPUT_BUCKET, Stack, photo

SIDECAR = {"prompt": "a sunny beach at noon", "seed": 4321}


def test_an_archived_image_is_one_record_for_its_event_its_sidecars_and_their_duplicates(stack: Stack):
    stack.s3.put_object(Bucket=INPUT_BUCKET, Key="cold.jpg", Body=photo("JPEG"), StorageClass="GLACIER")
    stack.upload("cold.jpg.json", SIDECAR)
    messages = stack.received()
    assert len(messages) == 2  # the image's event and the sidecar's
    stack.deliver([*messages, messages[0]])  # and a duplicate of the image's
    ((record, error_class),) = stack.dlq()
    assert (error_class, record["source"]["key"]) == ("internal", "cold.jpg")
    assert "InvalidObjectState" in record["error"]["message"]
    assert stack.api_calls == 0
