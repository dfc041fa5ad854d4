"""A drop folder on a stack, deployed or local: `backdrop watch DIR --stack NAME` and `backdrop run DIR`."""
