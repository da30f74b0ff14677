"""Comprehend's Flywheel operations (``services/flywheels.py`` says what a flywheel is in
tagloop): flywheels, their datasets and iterations, in Comprehend's member names. Mixed into
:class:`~tagloop.api.comprehend.operations.ComprehendApi`; each method takes the request body
(decoded, authorized and validated against Comprehend's model) and returns the response body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tagloop.api.comprehend.paging import page as _page
from tagloop.app import Tagloop
from tagloop.domain.arns import Arns
from tagloop.errors import InvalidRequest

COMPREHEND_CSV = "COMPREHEND_CSV"
FLYWHEEL_METRICS = {
    "AverageF1Score": "F1Score",
    "AveragePrecision": "Precision",
    "AverageRecall": "Recall",
    "AverageAccuracy": "Accuracy",
}
"""Comprehend's flywheel metrics and the classifier metrics they are (macro averages)."""
DATASET_S3URI = "InputDataConfig.DocumentClassifierInputDataConfig.S3Uri"


def epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def when(value: Any) -> datetime | None:
    """A timestamp member (epoch seconds in JSON, a datetime in CBOR) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError) as exc:  # before year 1: a filter nothing passes
        raise InvalidRequest(f"timestamp {value!r} is out of range") from exc


def present(properties: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in properties.items() if value is not None}


class FlywheelOperations:
    tagloop: Tagloop
    arns: Arns

    # ---- flywheels ---------------------------------------------------------------------
    def _model_arn(self, classifier: str, version: str | None) -> str | None:
        return self.arns.classifier(classifier, version) if version else None

    def _flywheel_properties(self, flywheel: dict[str, Any]) -> dict[str, Any]:
        return present(
            {
                "FlywheelArn": self.arns.flywheel(flywheel["name"]),
                "ActiveModelArn": self._model_arn(flywheel["classifier"], flywheel["active_version"]),
                "DataAccessRoleArn": flywheel["role_arn"],
                "TaskConfig": flywheel["task_config"],
                "DataLakeS3Uri": flywheel["data_lake_uri"],
                "Status": flywheel["status"],
                "ModelType": flywheel["model_type"],
                "Message": flywheel["message"],
                "CreationTime": epoch(flywheel["created_at"]),
                "LastModifiedTime": epoch(flywheel["updated_at"]),
                "LatestFlywheelIteration": flywheel["latest_iteration"],
            }
        )

    def CreateFlywheel(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - AWS operation names
        classifier = version = None
        if body.get("ActiveModelArn"):
            classifier, version = Arns.parse_classifier(body["ActiveModelArn"])
        flywheel = self.tagloop.flywheels.create(
            str(body.get("FlywheelName", "")),
            classifier=classifier,
            version=version,
            task_config=body.get("TaskConfig"),
            model_type=body.get("ModelType"),
            data_lake_uri=body.get("DataLakeS3Uri"),  # recorded, never read or written
            role_arn=body.get("DataAccessRoleArn"),
            tags=body.get("Tags"),
        )
        return present(
            {
                "FlywheelArn": self.arns.flywheel(flywheel["name"]),
                "ActiveModelArn": self._model_arn(flywheel["classifier"], flywheel["active_version"]),
            }
        )

    def _flywheel_name(self, body: dict[str, Any]) -> str:
        return Arns.parse_flywheel(str(body.get("FlywheelArn", "")))

    def DescribeFlywheel(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel = self.tagloop.flywheels.show(self._flywheel_name(body))
        return {"FlywheelProperties": self._flywheel_properties(flywheel)}

    def UpdateFlywheel(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        classifier = version = None
        if body.get("ActiveModelArn"):
            classifier, version = Arns.parse_classifier(body["ActiveModelArn"])
            if version is None:
                raise InvalidRequest("ActiveModelArn must name a model version (.../version/<name>)")
        flywheel = self.tagloop.flywheels.update(
            self._flywheel_name(body),
            classifier=classifier,
            version=version,
            role_arn=body.get("DataAccessRoleArn"),
        )
        return {"FlywheelProperties": self._flywheel_properties(flywheel)}

    def ListFlywheels(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = body.get("Filter") or {}
        items = [
            {
                key: value
                for key, value in self._flywheel_properties(flywheel).items()
                if key not in ("DataAccessRoleArn", "TaskConfig", "DataSecurityConfig")
            }
            for flywheel in self.tagloop.flywheels.list(
                wanted.get("Status"),
                when(wanted.get("CreationTimeAfter")),
                when(wanted.get("CreationTimeBefore")),
            )
        ]
        page, token = _page(items, body)
        return {"FlywheelSummaryList": page} | ({"NextToken": token} if token else {})

    def DeleteFlywheel(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.tagloop.flywheels.delete(self._flywheel_name(body))
        return {}

    # ---- datasets ----------------------------------------------------------------------
    def _dataset_properties(self, dataset: dict[str, Any]) -> dict[str, Any]:
        return present(
            {
                "DatasetArn": self.arns.dataset(dataset["flywheel"], dataset["name"]),
                "DatasetName": dataset["name"],
                "DatasetType": dataset["kind"],
                "DatasetS3Uri": dataset["source"],
                "Description": dataset["description"],
                "Status": dataset["status"],
                "Message": dataset["message"],
                "NumberOfDocuments": dataset["documents"],
                "CreationTime": epoch(dataset["created_at"]),
                "EndTime": epoch(dataset["ended_at"]),
            }
        )

    def CreateDataset(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel = self._flywheel_name(body)
        config = body.get("InputDataConfig") or {}
        if config.get("DataFormat", COMPREHEND_CSV) != COMPREHEND_CSV or config.get("AugmentedManifests"):
            raise InvalidRequest("only DataFormat COMPREHEND_CSV is supported")
        if config.get("EntityRecognizerInputDataConfig"):
            raise InvalidRequest(
                "EntityRecognizerInputDataConfig is not supported: tagloop trains document classifiers"
            )
        classifier_config = config.get("DocumentClassifierInputDataConfig") or {}
        if not classifier_config.get("S3Uri"):
            raise InvalidRequest(f"{DATASET_S3URI} is required")
        source = self.tagloop.data_locations.check(
            classifier_config["S3Uri"], DATASET_S3URI
        )  # before any read
        dataset = self.tagloop.flywheels.create_dataset(
            flywheel,
            str(body.get("DatasetName", "")),
            source,
            kind=body.get("DatasetType") or "TRAIN",
            delimiter=classifier_config.get("LabelDelimiter") or "|",
            description=body.get("Description"),
        )
        return {"DatasetArn": self.arns.dataset(flywheel, dataset["name"])}

    def DescribeDataset(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel, name = Arns.parse_dataset(str(body.get("DatasetArn", "")))
        return {"DatasetProperties": self._dataset_properties(self.tagloop.flywheels.dataset(flywheel, name))}

    def ListDatasets(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = body.get("Filter") or {}
        flywheel = self._flywheel_name(body) if body.get("FlywheelArn") else None
        datasets = self.tagloop.flywheels.datasets(
            flywheel,
            wanted.get("DatasetType"),
            wanted.get("Status"),
            when(wanted.get("CreationTimeAfter")),
            when(wanted.get("CreationTimeBefore")),
        )
        page, token = _page([self._dataset_properties(dataset) for dataset in datasets], body)
        return {"DatasetPropertiesList": page} | ({"NextToken": token} if token else {})

    # ---- iterations --------------------------------------------------------------------
    def _iteration_properties(self, flywheel: str, iteration: dict[str, Any]) -> dict[str, Any]:
        classifier = iteration["classifier"]
        metrics = iteration.get("metrics") or {}
        message = iteration.get("message")
        if iteration.get("decision"):
            message = f"{iteration['decision']}: {iteration.get('reason') or ''}".rstrip(": ")
        return present(
            {
                "FlywheelArn": self.arns.flywheel(flywheel),
                "FlywheelIterationId": iteration["iteration"],
                "CreationTime": epoch(iteration.get("created_at")),
                "EndTime": epoch(iteration.get("ended_at")),
                "Status": iteration["status"],
                "Message": message,
                "EvaluatedModelArn": self._model_arn(classifier, iteration.get("champion")),
                "EvaluatedModelMetrics": flywheel_metrics(metrics.get("champion")),
                "TrainedModelArn": self._model_arn(classifier, iteration.get("challenger")),
                "TrainedModelMetrics": flywheel_metrics(metrics.get("challenger")),
            }
        )

    def StartFlywheelIteration(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel = self._flywheel_name(body)
        started = self.tagloop.flywheels.start_iteration(flywheel)
        return {"FlywheelArn": self.arns.flywheel(flywheel), "FlywheelIterationId": started["iteration"]}

    def DescribeFlywheelIteration(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel = self._flywheel_name(body)
        iteration = self.tagloop.flywheels.iteration(flywheel, str(body.get("FlywheelIterationId", "")))
        return {"FlywheelIterationProperties": self._iteration_properties(flywheel, iteration)}

    def ListFlywheelIterationHistory(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        flywheel = self._flywheel_name(body)
        wanted = body.get("Filter") or {}
        iterations = self.tagloop.flywheels.history(
            flywheel, when(wanted.get("CreationTimeAfter")), when(wanted.get("CreationTimeBefore"))
        )
        page, token = _page([self._iteration_properties(flywheel, item) for item in iterations], body)
        return {"FlywheelIterationPropertiesList": page} | ({"NextToken": token} if token else {})


def flywheel_metrics(metrics: dict[str, Any] | None) -> dict[str, float] | None:
    """A model's evaluation as Comprehend's FlywheelModelEvaluationMetrics."""
    if not metrics:
        return None
    return {
        name: float(metrics[ours]) for name, ours in FLYWHEEL_METRICS.items() if metrics.get(ours) is not None
    } or None
