"""The Amazon Comprehend-compatible API, so `boto3.client("comprehend", endpoint_url=...)` works
unchanged: ``transport`` speaks the protocols (JSON 1.1, RPC v2 CBOR), checks signatures and
scopes and shapes errors; ``input`` validates bodies against Comprehend's own model;
``operations`` runs each operation on tagloop's services; ``arns`` makes and parses ARNs."""

from tagloop.api.comprehend.operations import ComprehendApi
from tagloop.api.comprehend.transport import aws_error, protocol_of, router

__all__ = ["ComprehendApi", "aws_error", "protocol_of", "router"]
