"""Amazon Resource Names of the Comprehend API: made from tagloop's names and parsed back (the
Comprehend door, and messages that give a version's or an endpoint's ARN)."""

from __future__ import annotations

from tagloop.errors import InvalidRequest


class Arns:
    def __init__(self, region: str, account: str) -> None:
        self.prefix = f"arn:aws:comprehend:{region}:{account}"

    def classifier(self, name: str, version: str | None = None) -> str:
        suffix = f"/version/{version}" if version else ""
        return f"{self.prefix}:document-classifier/{name}{suffix}"

    def endpoint(self, name: str) -> str:
        return f"{self.prefix}:document-classifier-endpoint/{name}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:document-classification-job/{job_id}"

    def flywheel(self, name: str) -> str:
        return f"{self.prefix}:flywheel/{name}"

    def dataset(self, flywheel: str, name: str) -> str:
        return f"{self.prefix}:flywheel/{flywheel}/dataset/{name}"

    @staticmethod
    def parse_classifier(arn: str) -> tuple[str, str | None]:
        resource = arn.split(":", 5)[-1]
        kind, _, rest = resource.partition("/")
        if kind != "document-classifier" or not rest:
            raise InvalidRequest(f"not a document classifier ARN: {arn!r}")
        name, _, version = rest.partition("/version/")
        return name, version or None

    @staticmethod
    def parse_endpoint(arn: str) -> str:
        resource = arn.split(":", 5)[-1]
        kind, _, name = resource.partition("/")
        if kind != "document-classifier-endpoint" or not name:
            raise InvalidRequest(f"not a document classifier endpoint ARN: {arn!r}")
        return name

    @staticmethod
    def parse_flywheel(arn: str) -> str:
        """The flywheel name of ``arn:aws:comprehend:<region>:<account>:flywheel/<name>``."""
        resource = arn.split(":", 5)[-1]
        kind, _, name = resource.partition("/")
        if kind != "flywheel" or not name or "/" in name:
            raise InvalidRequest(f"not a flywheel ARN: {arn!r}")
        return name

    @staticmethod
    def parse_dataset(arn: str) -> tuple[str, str]:
        """The flywheel and dataset names of ``...:flywheel/<flywheel>/dataset/<dataset>``."""
        resource = arn.split(":", 5)[-1]
        kind, _, rest = resource.partition("/")
        flywheel, _, dataset = rest.partition("/dataset/")
        if kind != "flywheel" or not flywheel or not dataset or "/" in flywheel or "/" in dataset:
            raise InvalidRequest(f"not a flywheel dataset ARN: {arn!r}")
        return flywheel, dataset
