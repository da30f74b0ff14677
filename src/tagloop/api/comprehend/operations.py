"""The Comprehend operations: each takes a request body (already decoded, authorized and
validated against Comprehend's model by the transport) and returns the response body, in
Comprehend's member names, calling tagloop's services. Nothing here knows the protocol."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from tagloop.api.coalesce import Coalescer
from tagloop.api.comprehend.flywheels import FlywheelOperations
from tagloop.api.comprehend.paging import page as _page
from tagloop.api.comprehend.paging import page_size as _page_size
from tagloop.api.state import serving_of
from tagloop.app import Tagloop
from tagloop.domain.arns import Arns
from tagloop.domain.comprehend import result as comprehend_result
from tagloop.domain.limits import over_limit, utf8_size_over
from tagloop.domain.records import Mode
from tagloop.domain.routing import decide
from tagloop.errors import InvalidRequest, JobNotFound, LimitExceeded, NotFound, ResourceUnavailable
from tagloop.services.batch import COMPREHEND_LAYOUT, BatchJob, BatchRequest
from tagloop.services.routing import draw, routed_task
from tagloop.services.training import TrainRequest


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class ComprehendApi(FlywheelOperations):
    """One method per operation; each takes the request body and returns the response body.

    ClassifyDocument is a coroutine, run on the event loop; the others may touch the database
    or read files and are called on a worker thread.
    """

    def __init__(self, tagloop: Tagloop, coalescer: Coalescer) -> None:
        self.tagloop = tagloop
        self.coalescer = coalescer
        self.arns = Arns(tagloop.settings.aws_region, tagloop.settings.aws_account_id)

    async def ClassifyDocument(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - AWS operation names
        """Classify one text with its endpoint's model, scored together with the other requests
        of this loop turn. The endpoint comes from memory; only when this process does not know
        it (or checked it too long ago) is it resolved on a worker thread, which may read the
        database or load the model."""
        text, name = self._classify_request(body)
        serving = await serving_of(self.tagloop, name)
        top = self.tagloop.predictions.answer_top(serving.model)
        (prediction,) = await self.coalescer(serving.model, [text], top)
        if prediction.error is not None:
            raise InvalidRequest(prediction.error.message)
        result = comprehend_result(prediction)
        prediction_id = self.tagloop.prediction_log.record(
            serving.endpoint, serving.version_id, text, prediction, result
        )
        policy = serving.routing
        if policy is not None and (reason := decide(policy, prediction, draw())) is not None:
            # the answer stays Comprehend's and names no task: written without waiting
            self.tagloop.review_tasks.send(
                [routed_task(serving, policy, reason, text, prediction, prediction_id)]
            )
        return result

    def _classify_request(self, body: dict[str, Any]) -> tuple[str, str]:
        """The text of a ClassifyDocument call, checked, and the name of its endpoint."""
        text = body.get("Text")
        if not isinstance(text, str) or not text:
            raise InvalidRequest("Text is required")
        limit = self.tagloop.settings.max_classify_bytes
        if (size := utf8_size_over(text, limit)) is not None:
            raise LimitExceeded(over_limit(f"Text is {size:,} bytes", limit, "max_classify_bytes"))
        return text, Arns.parse_endpoint(str(body.get("EndpointArn", "")))

    def _classifier_properties(self, name: str, version: dict[str, Any]) -> dict[str, Any]:
        metrics = version.get("metrics") or {}
        sources = (version.get("parameters") or {}).get("sources") or {}
        properties: dict[str, Any] = {
            "DocumentClassifierArn": self.arns.classifier(name, version["version"]),
            "LanguageCode": "en",
            "Status": version["status"],
            "Message": version.get("message"),
            "SubmitTime": _epoch(version.get("created_at")),
            "EndTime": _epoch(version.get("ended_at")),
            "TrainingStartTime": _epoch(version.get("started_at")),
            "TrainingEndTime": _epoch(version.get("ended_at")),
            "InputDataConfig": {"DataFormat": "COMPREHEND_CSV", "S3Uri": sources.get("train") or ""},
            "Mode": version.get("mode"),
            "VersionName": version["version"],
        }
        if sources.get("test"):
            properties["InputDataConfig"]["TestS3Uri"] = sources["test"]
        if metrics:
            properties["ClassifierMetadata"] = {
                "NumberOfLabels": len(version.get("labels") or []),
                "NumberOfTrainedDocuments": (version.get("documents") or {}).get("train", 0),
                "NumberOfTestDocuments": (version.get("documents") or {}).get("test", 0),
                "EvaluationMetrics": metrics,
            }
        return {key: value for key, value in properties.items() if value is not None}

    def _version(self, arn: str) -> tuple[str, dict[str, Any]]:
        name, version = Arns.parse_classifier(arn)
        versions = self.tagloop.catalog.versions(name)
        if not versions:
            raise NotFound(f"no document classifier {arn}")
        if version is None:
            return name, self.tagloop.catalog.version(name, versions[-1]["version"])
        return name, self.tagloop.catalog.version(name, version)

    def DescribeDocumentClassifier(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name, version = self._version(str(body.get("DocumentClassifierArn", "")))
        return {"DocumentClassifierProperties": self._classifier_properties(name, version)}

    def ListDocumentClassifiers(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = body.get("Filter") or {}
        items = []
        for classifier in self.tagloop.catalog.classifiers():
            if wanted.get("DocumentClassifierName") not in (None, classifier["name"]):
                continue
            for version in self.tagloop.catalog.versions(classifier["name"]):
                if wanted.get("Status") not in (None, version["status"]):
                    continue
                items.append(self._classifier_properties(classifier["name"], version))
        page, token = _page(items, body)
        return {"DocumentClassifierPropertiesList": page} | ({"NextToken": token} if token else {})

    def ListDocumentClassifierSummaries(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        items = []
        for classifier in self.tagloop.catalog.classifiers():
            versions = self.tagloop.catalog.versions(classifier["name"])
            if not versions:
                continue
            latest = versions[-1]
            items.append(
                {
                    "DocumentClassifierName": classifier["name"],
                    "NumberOfVersions": len(versions),
                    "LatestVersionCreatedAt": _epoch(latest.get("created_at")),
                    "LatestVersionName": latest["version"],
                    "LatestVersionStatus": latest["status"],
                }
            )
        page, token = _page(items, body)
        return {"DocumentClassifierSummariesList": page} | ({"NextToken": token} if token else {})

    def CreateDocumentClassifier(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        config = body.get("InputDataConfig") or {}
        if config.get("DataFormat", "COMPREHEND_CSV") != "COMPREHEND_CSV":
            raise InvalidRequest("only DataFormat COMPREHEND_CSV is supported")
        if not config.get("S3Uri"):
            raise InvalidRequest("InputDataConfig.S3Uri is required")
        locations = self.tagloop.data_locations  # checked before anything is opened
        data = locations.check(config["S3Uri"], "InputDataConfig.S3Uri")  # the URL training opens
        test = (
            locations.check(config["TestS3Uri"], "InputDataConfig.TestS3Uri")
            if config.get("TestS3Uri")
            else None
        )
        request = TrainRequest(
            classifier=str(body.get("DocumentClassifierName", "")),
            data=data,
            test=test,
            mode=Mode.parse(body.get("Mode", "MULTI_CLASS")),
            delimiter=config.get("LabelDelimiter") or "|",
            version_name=body.get("VersionName"),
            format="comprehend-csv",
        )
        submission = self.tagloop.training.submit(request)
        summary = self.tagloop.training.summary(submission.version_id)
        return {"DocumentClassifierArn": self.arns.classifier(summary["classifier"], summary["version"])}

    def StopTrainingDocumentClassifier(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name, version = self._version(str(body.get("DocumentClassifierArn", "")))
        self.tagloop.training.stop(name, version["version"])
        return {}

    def DeleteDocumentClassifier(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name, version = self._version(str(body.get("DocumentClassifierArn", "")))
        self.tagloop.training.delete_version(name, version["version"], remove_empty_classifier=True)
        return {}

    def _endpoint_properties(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        properties = {
            "EndpointArn": self.arns.endpoint(endpoint["name"]),
            "Status": endpoint["status"],
            "Message": endpoint["message"],
            "ModelArn": self.arns.classifier(endpoint["classifier"], endpoint["version"]),
            "DesiredModelArn": self.arns.classifier(endpoint["classifier"], endpoint["desired_version"]),
            "DesiredInferenceUnits": endpoint["desired_inference_units"],
            "CurrentInferenceUnits": endpoint["current_inference_units"],
            "CreationTime": _epoch(endpoint["created_at"]),
            "LastModifiedTime": _epoch(endpoint["updated_at"]),
        }
        if endpoint.get("follows") and (
            flywheel := self.tagloop.flywheels.flywheel_of(endpoint["classifier"])
        ):
            properties["FlywheelArn"] = self.arns.flywheel(flywheel)  # it serves the flywheel's active model
        return {key: value for key, value in properties.items() if value is not None}

    def _flywheel_model(self, body: dict[str, Any], model_member: str) -> tuple[str, str | None]:
        """The classifier of the request's FlywheelArn, and the version its ``model_member``
        (optional) names, which must be of that classifier."""
        classifier = self.tagloop.flywheels.classifier_of(Arns.parse_flywheel(str(body["FlywheelArn"])))
        version = None
        if body.get(model_member):
            named, version = Arns.parse_classifier(str(body[model_member]))
            if named != classifier:
                raise InvalidRequest(
                    f"{model_member} must be a model of the flywheel's classifier {classifier!r}"
                )
        return classifier, version

    def CreateEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """On a ModelArn: pinned to that model, as on Comprehend. On a FlywheelArn: serving the
        flywheel's active model, and following it whenever another becomes active."""
        units = int(body.get("DesiredInferenceUnits") or 1)
        endpoint = str(body.get("EndpointName", ""))
        if body.get("FlywheelArn"):
            classifier, version = self._flywheel_model(body, "ModelArn")
            created = self.tagloop.endpoints.create(endpoint, classifier, version, units, follow=True)
            model = self.arns.classifier(created["classifier"], created["version"])
            return {"EndpointArn": self.arns.endpoint(created["name"]), "ModelArn": model}
        if not body.get("ModelArn"):
            raise InvalidRequest("ModelArn or FlywheelArn is required")
        name, version = Arns.parse_classifier(str(body["ModelArn"]))
        created = self.tagloop.endpoints.create(endpoint, name, version, units, follow=False)
        return {"EndpointArn": self.arns.endpoint(created["name"]), "ModelArn": body["ModelArn"]}

    def DescribeEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        endpoint = self.tagloop.endpoints.show(Arns.parse_endpoint(str(body.get("EndpointArn", ""))))
        return {"EndpointProperties": self._endpoint_properties(endpoint)}

    def UpdateEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """DesiredModelArn pins the endpoint to that model (as on Comprehend); FlywheelArn (of
        the endpoint's classifier) makes it serve the flywheel's active model and follow it."""
        name = Arns.parse_endpoint(str(body.get("EndpointArn", "")))
        version, follow = None, None
        if body.get("FlywheelArn"):
            classifier, version = self._flywheel_model(body, "DesiredModelArn")
            if classifier != self.tagloop.endpoints.show(name)["classifier"]:
                raise InvalidRequest("FlywheelArn must be the flywheel of the endpoint's classifier")
            follow = True
        elif body.get("DesiredModelArn"):
            classifier, version = Arns.parse_classifier(body["DesiredModelArn"])
            if classifier != self.tagloop.endpoints.show(name)["classifier"]:
                raise InvalidRequest("DesiredModelArn must be a version of the endpoint's classifier")
            follow = False
        units = body.get("DesiredInferenceUnits")
        updated = self.tagloop.endpoints.update(
            name, version, int(units) if units is not None else None, follow=follow
        )
        if follow:
            return {
                "DesiredModelArn": self.arns.classifier(updated["classifier"], updated["desired_version"])
            }
        return {"DesiredModelArn": body.get("DesiredModelArn")} if body.get("DesiredModelArn") else {}

    def ListEndpoints(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = body.get("Filter") or {}
        items = [
            self._endpoint_properties(endpoint)
            for endpoint in self.tagloop.endpoints.list()
            if wanted.get("Status") in (None, endpoint["status"])
        ]
        page, token = _page(items, body)
        return {"EndpointPropertiesList": page} | ({"NextToken": token} if token else {})

    def DeleteEndpoint(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.tagloop.endpoints.delete(Arns.parse_endpoint(str(body.get("EndpointArn", ""))))
        return {}

    def _job_properties(self, job: dict[str, Any]) -> dict[str, Any]:
        payload = job.get("payload") or {}
        properties = {
            "JobId": job["id"],
            "JobArn": self.arns.job(job["id"]),
            "JobName": payload.get("name"),
            "JobStatus": job["status"],
            "Message": job.get("error"),
            "SubmitTime": _epoch(job.get("created_at")),
            "EndTime": _epoch(job.get("ended_at")),
            "DocumentClassifierArn": self.arns.classifier(job["classifier"], job["version"]),
            "InputDataConfig": {"S3Uri": payload.get("input"), "InputFormat": payload.get("input_format")},
            "OutputDataConfig": {"S3Uri": payload.get("output_uri") or payload.get("output_dir")},
            "FlywheelArn": self.arns.flywheel(payload["flywheel"]) if payload.get("flywheel") else None,
        }
        return {key: value for key, value in properties.items() if value is not None}

    def _batch_job(self, job_id: Any) -> dict[str, Any]:
        try:
            job = self.tagloop.jobs.show(str(job_id))
        except NotFound:
            job = None
        if job is None or job["kind"] != "batch":
            raise JobNotFound(f"no document classification job {job_id!r}")
        return job

    def StopDocumentClassificationJob(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        job = self._batch_job(body.get("JobId", ""))
        if job["status"] in ("COMPLETED", "FAILED"):
            raise InvalidRequest(f"job {job['id']} is {job['status']}: only running jobs can be stopped")
        if job["status"] != "STOPPED":
            job = self.tagloop.jobs.stop(job["id"])
        return {"JobId": job["id"], "JobStatus": job["status"]}

    def StartDocumentClassificationJob(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """On a DocumentClassifierArn, or on a FlywheelArn: its active model (unless a
        DocumentClassifierArn of the flywheel's classifier names a version)."""
        flywheel_name = None
        if body.get("FlywheelArn"):
            name, version = self._flywheel_model(body, "DocumentClassifierArn")
            flywheel_name = Arns.parse_flywheel(str(body["FlywheelArn"]))
            if version is None:
                flywheel = self.tagloop.flywheels.show(flywheel_name)
                version = flywheel["active_version"]
                if version is None:
                    raise ResourceUnavailable(f"flywheel {flywheel['name']!r} has no active model yet")
        elif body.get("DocumentClassifierArn"):
            name, version = Arns.parse_classifier(str(body["DocumentClassifierArn"]))
        else:
            raise InvalidRequest("DocumentClassifierArn or FlywheelArn is required")
        source = body.get("InputDataConfig") or {}
        target = body.get("OutputDataConfig") or {}
        if not source.get("S3Uri") or not target.get("S3Uri"):
            raise InvalidRequest("InputDataConfig.S3Uri and OutputDataConfig.S3Uri are required")
        locations = self.tagloop.data_locations  # the job stores and uses the checked URLs
        request = BatchRequest(
            classifier=name,
            input=locations.check(source["S3Uri"], "InputDataConfig.S3Uri"),
            output=locations.check(target["S3Uri"], "OutputDataConfig.S3Uri"),
            input_format=source.get("InputFormat") or "ONE_DOC_PER_LINE",
            version=version,
            name=body.get("JobName"),
            confined=True,
            layout=COMPREHEND_LAYOUT,  # <output>/<account>-CLN-<job id>/output/output.tar.gz
            flywheel=flywheel_name,
        )
        job_id = self.tagloop.batch.submit(request)
        return {"JobId": job_id, "JobArn": self.arns.job(job_id), "JobStatus": "SUBMITTED"}

    def DescribeDocumentClassificationJob(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {
            "DocumentClassificationJobProperties": self._job_properties(
                self._batch_job(body.get("JobId", ""))
            )
        }

    def ListDocumentClassificationJobs(self, body: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        wanted = body.get("Filter") or {}
        jobs, token = self.tagloop.jobs.page(
            BatchJob.kind,
            status=wanted.get("JobStatus"),
            name=wanted.get("JobName"),
            limit=_page_size(body),
            after=body.get("NextToken") or None,
        )
        page = [self._job_properties(job) for job in jobs]
        return {"DocumentClassificationJobPropertiesList": page} | ({"NextToken": token} if token else {})


OPERATIONS: dict[str, Callable[[ComprehendApi, dict[str, Any]], dict[str, Any]]] = {
    name: getattr(ComprehendApi, name)
    for name in dir(ComprehendApi)
    if name[0].isupper()
    and callable(getattr(ComprehendApi, name))
    and not inspect.iscoroutinefunction(getattr(ComprehendApi, name))
}
"""The operations called on a worker thread."""
COROUTINES: dict[str, Callable[[ComprehendApi, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    name: getattr(ComprehendApi, name)
    for name in dir(ComprehendApi)
    if name[0].isupper() and inspect.iscoroutinefunction(getattr(ComprehendApi, name))
}
"""The operations run on the event loop (ClassifyDocument, the hot path)."""
