"""Composition root: builds storage, the job queue and the services from settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tagloop.domain.a2i import A2iArns
from tagloop.domain.limits import Limits
from tagloop.domain.review import NewTask
from tagloop.jobs.local import LocalJobQueue
from tagloop.jobs.port import JobKind, JobQueue
from tagloop.services.batch import BatchJob, BatchService, BatchShardJob
from tagloop.services.catalog import Catalog
from tagloop.services.data_locations import DataLocations
from tagloop.services.endpoints import DeployJob, EndpointService
from tagloop.services.feedback import FeedbackService
from tagloop.services.flywheels import FlywheelService
from tagloop.services.human_loops import HumanLoopService
from tagloop.services.inbox import InboxJob, InboxService
from tagloop.services.iterations import IterateJob, IterationService
from tagloop.services.jobs import JobService
from tagloop.services.keys import KeyService
from tagloop.services.loop_ticker import LoopTicker
from tagloop.services.loops import LoopService
from tagloop.services.model_cache import ModelCache
from tagloop.services.monitoring import MonitoringService
from tagloop.services.notify import ChannelService
from tagloop.services.overview import Overview
from tagloop.services.pool import PoolService
from tagloop.services.prediction_history import PredictionHistory
from tagloop.services.prediction_log import PredictionLog
from tagloop.services.predictions import PredictionService
from tagloop.services.profiles import ProfileService
from tagloop.services.reliability import ReliabilityPolicy
from tagloop.services.reports import ReportService
from tagloop.services.request_tokens import RequestTokens
from tagloop.services.review import ReviewService
from tagloop.services.review_fill import ReviewFill
from tagloop.services.review_stats import ReviewStatistics
from tagloop.services.routing import TaskWriter
from tagloop.services.secrets import SecretBox, load_or_create_key
from tagloop.services.task_journal import replay
from tagloop.services.task_store import insert_new_tasks, insert_tasks
from tagloop.services.training import TrainingService, TrainJob
from tagloop.services.users import UserService
from tagloop.settings import Settings
from tagloop.storage import migrate
from tagloop.storage.artifacts import ArtifactStore
from tagloop.storage.database import Database


class Tagloop:
    """Everything a front end (CLI, API) needs, wired once from :class:`Settings`.

    The embedded SQLite database is migrated automatically; a server database must be
    upgraded with ``tagloop db upgrade`` (so several processes never race to migrate it).
    Building it starts nothing: :meth:`start_workers` runs queued jobs in this process.
    """

    def __init__(self, settings: Settings | None = None, check_schema: bool = True) -> None:
        self.settings = settings or Settings()
        self.database = Database(self.settings.resolved_database_url)
        if check_schema:
            migrate.ensure_current(self.database, auto_upgrade=self.database.is_embedded)
        self.artifacts = ArtifactStore(self.settings.resolved_artifacts_url)
        self.data_locations = DataLocations.from_settings(self.settings)  # what the network APIs may use
        self.models = ModelCache(self.artifacts, self.settings.model_cache_size)
        self.queue = self._queue()
        self.catalog = Catalog(self.database)
        self.reports = ReportService(self.database, self.artifacts, self.models)  # a version's figures
        box = SecretBox(load_or_create_key(self.settings.secret_key, self.settings.data_dir))
        self.keys = KeyService(self.database, box)
        # import profiles: how a source (files, archives, SQLite, SQL) becomes rows (issue 15)
        self.profiles = ProfileService(self.database, self.settings, self.data_locations, box)
        self.training = TrainingService(
            self.database, self.artifacts, self.settings, self.queue, self.profiles
        )
        self.predictions = PredictionService(self.database, self.models, self.settings)
        self.jobs = JobService(self.database, self.queue)
        self.batch = BatchService(
            self.database,
            self.queue,
            self.models,
            self.predictions,
            self.data_locations,
            self.settings.aws_account_id,  # in the Comprehend layout's folder names
        )
        self.endpoints = EndpointService(
            self.database, self.models, self.queue, self.settings.endpoint_refresh_seconds
        )
        # notification channels and their delivery log; the ticker part below sends (issue 15)
        self.notify = ChannelService(self.database, self.settings, box)
        self.prediction_log = PredictionLog(
            self.database, self.settings.log_predictions, keep_text=self.settings.log_prediction_text
        )
        # routed predictions' review tasks, committed in groups (services/routing.py) by the
        # same row-building as ReviewService.add_tasks (storage/review.task_row)
        self.review_tasks = TaskWriter(lambda tasks: insert_tasks(self.database, tasks))
        self.feedback = FeedbackService(
            self.database,
            self.settings,
            self.predictions,
            self.endpoints,
            self.review_tasks.write_now,
        )
        self.prediction_history = PredictionHistory(self.database, self.settings.prediction_retention_days)
        self.review = ReviewService(
            self.database,
            self.settings.review_order,
            reliability=ReliabilityPolicy(
                self.settings.review_consolidation,
                self.settings.review_reliability_min_answers,
                self.settings.review_reliability_threshold,
                self.settings.review_reliability_refresh_answers,
                self.settings.review_reliability_refresh_seconds,
            ),
        )
        self.human_loops = HumanLoopService(  # A2I: task UIs, flow definitions, human loops
            self.database,
            self.data_locations,
            self.settings.resolved_artifacts_url,
            A2iArns(self.settings.aws_region, self.settings.aws_account_id),
            self.review,  # a loop is a review task; its output.json is written when it completes
        )
        # the unlabelled pool (files, /v1 documents, sampled logged predictions)
        self.pool = PoolService(self.database, Limits.from_settings(self.settings), self.data_locations)
        # active-learning picks from the pool into the review queue; refill is a loop-ticker part
        self.review_fill = ReviewFill(self.database, self.models, self.settings.pool_score_limit)
        # the Comprehend API's ClientRequestTokens: a retried create answers as the first did
        self.request_tokens = RequestTokens(self.database, self.settings.request_token_hours)
        self.users = UserService(self.database)  # people of the web UI: roles, passwords, sessions
        self.review_stats = ReviewStatistics(self.database)  # the console's review activity over time
        self.monitoring = MonitoringService(  # drift per endpoint and day; its tick records events
            self.database,
            self.artifacts,
            self.models,
            psi_threshold=self.settings.drift_psi_threshold,
            min_count=self.settings.drift_min_count,
            refresh_seconds=self.settings.monitor_seconds,
        )
        # the learning loop: champions, promotion, iterations (services/loops.py, iterations.py)
        self.loops = LoopService(self.database, self.models)
        self.overview = Overview(self.database, self.reports)  # the console's read model
        self.iterations = IterationService(self.database, self.training, self.models, self.queue)
        # the loop's periodic work in serve and worker (TAGLOOP_LOOP_TICK_SECONDS); parts are added here
        self.ticker = LoopTicker(
            [
                self.iterations.tick,  # iterations whose trigger is due
                self.pool.tick,  # logged predictions sampled into pools
                self.review_fill.tick,  # review queues refilled with active-learning picks
                self.monitoring.tick,  # drift figures and events
                self.human_loops.tick,  # A2I output.json files whose write failed
                self.notify.tick,  # events to notification deliveries; due ones sent, retried
            ],
            self.settings.loop_tick_seconds,
        )
        # Comprehend's flywheels: loops known by a name, their datasets (services/flywheels.py)
        self.flywheels = FlywheelService(self.database, self.settings, self.loops, self.iterations)
        # inboxes: a dropped file → import, train, evaluate, deploy (services/inbox.py); their scans
        # run on their own ticker (TAGLOOP_INBOX_POLL_SECONDS), apart from the loop's slower one
        self.inbox = InboxService(
            self.database, self.training, self.models, self.queue, self.settings, self.data_locations
        )
        self.inbox_ticker = LoopTicker([self.inbox.tick], self.settings.inbox_poll_seconds)
        kinds: list[JobKind] = [
            TrainJob(self.training),
            IterateJob(self.iterations),
            DeployJob(self.endpoints),
            BatchJob(self.data_locations),
            InboxJob(self.inbox),
            BatchShardJob(
                self.database, self.models, self.predictions, self.data_locations, self.review_tasks.write_now
            ),
        ]
        for kind in kinds:
            self.queue.register(kind)

    @property
    def review_journal(self) -> Path:
        """The folder of the serving processes' write-ahead journals of routed review tasks."""
        return self.settings.data_dir / "review-journal"

    def use_review_journal(self) -> None:
        """Routed answers of this server say "routed" once their tasks are journalled (unless
        TAGLOOP_ROUTING_WAIT_FOR_COMMIT): services/task_journal.py."""
        if not self.settings.routing_wait_for_commit:
            self.review_tasks.use_journal(self.review_journal, self._insert_new_tasks)

    def replay_review_journal(self) -> int:
        """Store the tasks journalled by server processes that are gone (skipping those stored)."""
        return replay(self.review_journal, self._insert_new_tasks)

    def _insert_new_tasks(self, tasks: Sequence[NewTask]) -> int:
        return insert_new_tasks(self.database, tasks)

    def _queue(self) -> JobQueue:
        workers, lease = self.settings.job_workers, self.settings.job_lease_seconds
        if self.settings.jobs == "procrastinate":
            from tagloop.jobs.procrastinate_queue import ProcrastinateJobQueue

            return ProcrastinateJobQueue(self.database, workers=workers, lease_seconds=lease)
        return LocalJobQueue(self.database, workers=workers, lease_seconds=lease)

    def start_workers(self) -> None:
        """Run queued jobs in background threads of this process (serve, worker)."""
        self.queue.start()

    def start_ticker(self) -> None:
        """Run the learning loop's periodic work in a background thread (serve, worker)."""
        self.ticker.start()
        self.inbox_ticker.start()  # inbox scans (TAGLOOP_INBOX_POLL_SECONDS)

    def close(self) -> None:
        self.ticker.stop()
        self.inbox_ticker.stop()
        self.prediction_history.stop_retention()
        self.endpoints.stop_following()
        self.queue.shutdown()
        self.review_tasks.close()
        self.prediction_log.close()
        self.notify.close()
        self.database.dispose()
