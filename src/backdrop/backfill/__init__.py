"""`backdrop backfill`: what is already in a bucket (or named by a manifest), sent to the work queue
as the S3 notifications its uploads would have sent (docs/REFERENCE.md#backfill).

The modules of this package use the function's own rules (which keys are images and sidecars,
the sidecar parser, the price table, output keys and metadata), imported from the function.
"""

from backdrop import function_code

function_code.make_importable()
