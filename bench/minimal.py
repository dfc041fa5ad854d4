"""The baseline: the least a function could do for one pair, with nothing of ours around it.

Get the sidecar, call the API with a presigned URL of the image, put the result. No validation,
no metrics, no idempotency, no DLQ, no retries: what Backdrop costs is measured against this.
"""

from __future__ import annotations

import json
import os
import sys
import time

STARTED = time.perf_counter()

import boto3  # noqa: E402 (the clock starts before the imports: they are part of a cold start)
import requests  # noqa: E402

_s3 = None
_session = requests.Session()


def s3():  # type: ignore[no-untyped-def]
    global _s3
    if _s3 is None:
        _s3 = boto3.client("s3")
    return _s3


def handle(bucket: str, key: str) -> None:
    sidecar = json.loads(s3().get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
    url = s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    response = _session.post(
        os.environ["API_URL"],
        json={"image": url, **sidecar},
        headers={"x-api-key": os.environ["API_KEY"]},
        timeout=(5, 120),
    )
    response.raise_for_status()
    out_key = key.rsplit(".", 1)[0] + ".png"
    s3().put_object(
        Bucket=os.environ["OUTPUT_BUCKET"], Key=out_key, Body=response.content, ContentType="image/png"
    )


if __name__ == "__main__":
    # `python -m bench.minimal BUCKET KEY [KEY ...]`: a cold process handling these pairs in turn;
    # prints when each was done, counted from the process start.
    done = []
    for image_key in sys.argv[2:]:
        handle(sys.argv[1], image_key)
        done.append(time.perf_counter() - STARTED)
    print(json.dumps({"seconds": done[-1], "done_at": done}))
