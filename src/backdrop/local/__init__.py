"""The embedded local stack: what stands in for AWS Lambda's machinery when there is no AWS."""
