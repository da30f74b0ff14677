"""Amazon Resource Names of A2I's resources (SageMaker task UIs and flow definitions, A2I
human loops), made from tagloop's names with the configured account and region and parsed
back."""

from __future__ import annotations

from tagloop.errors import InvalidRequest

TASK_UI, FLOW, LOOP = "human-task-ui", "flow-definition", "human-loop"


class A2iArns:
    def __init__(self, region: str, account: str) -> None:
        self.prefix = f"arn:aws:sagemaker:{region}:{account}"

    def task_ui(self, name: str) -> str:
        return f"{self.prefix}:{TASK_UI}/{name}"

    def flow(self, name: str) -> str:
        return f"{self.prefix}:{FLOW}/{name}"

    def loop(self, name: str) -> str:
        return f"{self.prefix}:{LOOP}/{name}"

    @staticmethod
    def name_in(arn: str, kind: str, member: str) -> str:
        """The resource name an ARN of ``kind`` holds (``member`` names the field in errors);
        any account and region are taken, as tagloop has one of each."""
        parts = arn.split(":", 5)
        resource = parts[5] if len(parts) == 6 and parts[0] == "arn" and parts[2] == "sagemaker" else ""
        found, _, name = resource.partition("/")
        if found != kind or not name or "/" in name:
            raise InvalidRequest(f"{member} is not a {kind} ARN: {arn[:200]!r}")
        return name
