"""Alarms to an SNS topic and a CloudWatch dashboard per stage, on the metrics ingest emits
(``nexus.metrics``) and on the AWS metrics of the queue, the functions and the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from nexus import metrics as m

from infra.context import StackContext
from infra.gateway import Gateway


@dataclass(frozen=True)
class Watched:
    """The functions watched, besides the context's queue and database."""

    proxy: lambda_.Function
    ingest: lambda_.Function
    dashboard: lambda_.Function
    gateway: Gateway
    analysis: sfn.StateMachine
    prompts: lambda_.Function | None = None  # the prompt library's sync (its fetcher), if configured


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext, *, watched: Watched) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage = ctx.stage
        self.queue, self.database = ctx.queue, ctx.database
        self.period = cdk.Duration.minutes(stage.alarms.period_minutes)
        # CloudWatch must be allowed to use the key, which rules out the AWS-managed SNS key.
        key = kms.Key(self, "AlarmsKey", enable_key_rotation=True, description="Nexus alarm topic")
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(self, "Alarms", display_name=f"Nexus {stage.name} alarms", master_key=key)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        if stage.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(stage.alarm_email))
        self.alarms = self._alarms(watched)
        self.dashboard = self._dashboard(watched)

    # -- metrics -------------------------------------------------------------------------------------

    def _nexus(self, name: str, stat: str = "Sum", **dims: str) -> cw.Metric:
        return cw.Metric(
            namespace=m.NAMESPACE,
            metric_name=name,
            dimensions_map={"service": m.SERVICE, **dims},
            statistic=stat,
            period=self.period,
        )

    def _gateway(self, name: str, stat: str = "Sum") -> cw.Metric:
        """A metric the gateway's workers publish (dimension ``service=nexus-gateway``)."""
        return cw.Metric(
            namespace=m.NAMESPACE,
            metric_name=name,
            dimensions_map={"service": m.GATEWAY_SERVICE},
            statistic=stat,
            period=self.period,
        )

    def _from_logs(self, name: str) -> cw.Metric:
        """A metric counted from the proxy's log lines by a metric filter (no dimensions)."""
        return cw.Metric(namespace=m.NAMESPACE, metric_name=name, statistic="Sum", period=self.period)

    def _rate(self, label: str, numerators: dict[str, cw.IMetric]) -> cw.MathExpression:
        """Percent of requests: ``100 * sum(numerators) / Requests``, 0 when there were none."""
        usage = {"req": self._nexus(m.REQUESTS), **numerators}
        top = " + ".join(f"FILL({k}, 0)" for k in numerators)
        return cw.MathExpression(
            expression=f"IF(FILL(req, 0) > 0, 100 * ({top}) / FILL(req, 0), 0)",
            using_metrics=usage,
            label=label,
            period=self.period,
        )

    # -- alarms --------------------------------------------------------------------------------------

    def _alarm(
        self, name: str, metric: cw.IMetric, threshold: float, description: str, **kw: Any
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            alarm_name=f"nexus-{self.stage.name}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=kw.pop("evaluation_periods", self.stage.alarms.evaluation_periods),
            comparison_operator=kw.pop(
                "comparison_operator", cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            **kw,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        return alarm

    def _alarms(self, w: Watched) -> dict[str, cw.Alarm]:
        a = self.stage.alarms
        gib = 1024**3
        return {
            "proxy-5xx": self._alarm(
                "proxy-5xx",
                self._rate(
                    "proxy 5xx %",
                    {
                        "proxyerr": self._nexus(m.PROXY_ERRORS),
                        "fnerr": w.proxy.metric_errors(period=self.period),
                    },
                ),
                a.proxy_5xx_percent,
                "Requests the proxy failed itself (upstream unreachable, function errors), % of requests",
            ),
            "upstream-5xx": self._alarm(
                "upstream-5xx",
                self._rate("upstream 5xx %", {"u5": self._nexus(m.UPSTREAM_5XX)}),
                a.upstream_5xx_percent,
                "Anthropic answered 5xx (500, 529 overloaded, ...), % of requests",
            ),
            "upstream-429": self._alarm(
                "upstream-429",
                self._rate("upstream 429 %", {"u429": self._nexus(m.UPSTREAM_429)}),
                a.upstream_429_percent,
                "Anthropic rate-limited requests (429), % of requests",
            ),
            "queue-age": self._alarm(
                "queue-age",
                self.queue.queue.metric_approximate_age_of_oldest_message(
                    period=self.period, statistic="Maximum"
                ),
                a.queue_age_s,
                "Records are waiting for ingest: the database or ingest is failing or too slow",
            ),
            "dead-letters": self._alarm(
                "dead-letters",
                self.queue.dead_letters.metric_approximate_number_of_messages_visible(
                    period=self.period, statistic="Maximum"
                ),
                1,
                "Records in the dead-letter queue: inspect and redrive (docs/deploy.md)",
                evaluation_periods=1,
            ),
            "ingest-errors": self._alarm(
                "ingest-errors",
                cw.MathExpression(
                    expression="FILL(fnerr, 0) + FILL(poison, 0)",
                    using_metrics={
                        "fnerr": w.ingest.metric_errors(period=self.period),
                        "poison": self._nexus(m.INGEST_POISON),
                    },
                    label="ingest errors",
                    period=self.period,
                ),
                1,
                "Ingest failed: function errors or records it could not store",
                evaluation_periods=1,
            ),
            "records-not-queued": self._alarm(
                "records-not-queued",
                cw.MathExpression(
                    expression="FILL(spilled, 0) + FILL(unsent, 0)",
                    using_metrics={
                        "spilled": self._from_logs(m.RECORDS_SPILLED),
                        "unsent": self._from_logs(m.RECORDS_UNSENT),
                    },
                    label="records not queued",
                    period=self.period,
                ),
                1,
                "The proxy could not send records to the queue: they wait in S3 for ingest's replay "
                "(RecordsSpilled), or, if S3 failed too, only in the proxy's log lines (RecordsUnsent: "
                "nexus records replay-log, docs/deploy.md)",
                evaluation_periods=1,
            ),
            "dashboard-errors": self._alarm(
                "dashboard-errors",
                w.dashboard.metric_errors(period=self.period),
                1,
                "The dashboard function failed",
                evaluation_periods=1,
            ),
            **self._gateway_alarms(w.gateway),
            "analysis-failed": self._alarm(
                "analysis-failed",
                cw.MathExpression(
                    expression="FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)",
                    using_metrics={
                        "failed": w.analysis.metric_failed(period=self.period),
                        "timedout": w.analysis.metric_timed_out(period=self.period),
                        "aborted": w.analysis.metric_aborted(period=self.period),
                    },
                    label="analysis executions failed",
                    period=self.period,
                ),
                1,
                "AI analysis runs failed (each run's reason: GET /api/conversations/{id}/analysis)",
                evaluation_periods=1,
            ),
            **self._prompts_alarm(w.prompts),
            "db-cpu": self._alarm(
                "db-cpu",
                self.database.instance.metric_cpu_utilization(period=self.period),
                a.db_cpu_percent,
                "Database CPU is high",
            ),
            "db-storage": self._alarm(
                "db-storage",
                self.database.instance.metric_free_storage_space(period=self.period, statistic="Minimum"),
                a.db_free_storage_gib * gib,
                "Database free storage is low (storage autoscaling has a ceiling)",
                comparison_operator=cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
            ),
        }

    def _prompts_alarm(self, fetcher: lambda_.Function | None) -> dict[str, cw.Alarm]:
        if fetcher is None:
            return {}
        return {
            "prompts-sync": self._alarm(
                "prompts-sync",
                fetcher.metric_errors(period=self.period),
                1,
                "The prompt library's sync failed (repository unreachable, token refused, library over "
                "the 6 MB payload limit, database): the reason is in the fetcher's log",
                evaluation_periods=1,
            )
        }

    def _gateway_alarms(self, g: Gateway) -> dict[str, cw.Alarm]:
        a, p = self.stage.alarms, self.period
        return {
            "gateway-5xx": self._alarm(
                "gateway-5xx",
                cw.MathExpression(
                    expression="FILL(gwerr, 0) + FILL(unreach, 0) + FILL(fronterr, 0) + FILL(routererr, 0)",
                    using_metrics={
                        "gwerr": self._gateway(m.GATEWAY_ERRORS),
                        "unreach": self._gateway(m.GATEWAY_UNREACHABLE),
                        "fronterr": g.front.metric_errors(period=p),
                        "routererr": g.router.metric_errors(period=p),
                    },
                    label="gateway 5xx",
                    period=p,
                ),
                a.gateway_5xx_count,
                "Turns the gateway failed itself (worker 5xx, router unreachable, function errors)",
                evaluation_periods=1,
            ),
            "gateway-rejected": self._alarm(
                "gateway-rejected",
                self._gateway(m.GATEWAY_REJECTED),
                a.gateway_rejected_count,
                "Turns refused with 429: every worker's sessions and queue are full (raise "
                "gateway_max_tasks or lower gateway_busy_target)",
                evaluation_periods=1,
            ),
            "gateway-first-delta": self._alarm(
                "gateway-first-delta",
                self._gateway(m.GATEWAY_FIRST_DELTA, "p95"),
                a.gateway_first_delta_p95_ms,
                "p95 time from request to first streamed token is high (cold sessions, queueing, upstream)",
            ),
            "gateway-busy": self._alarm(
                "gateway-busy",
                self._gateway(m.GATEWAY_BUSY_SESSIONS, "Average"),
                a.gateway_busy_per_task,
                "Workers are nearly full on average: scaling is at its maximum or not keeping up",
            ),
            "gateway-workers-missing": self._alarm(
                "gateway-workers-missing",
                cw.MathExpression(
                    expression="FILL(desired, 0) - FILL(running, 0)",
                    using_metrics={
                        "desired": g.task_count("DesiredTaskCount", p),
                        "running": g.task_count("RunningTaskCount", p),
                    },
                    label="worker tasks desired but not running",
                    period=p,
                ),
                a.gateway_missing_tasks,
                "Worker tasks fail to start or keep stopping (image, health check, memory): ECS service "
                "events and the worker log group",
            ),
        }

    # -- dashboard -----------------------------------------------------------------------------------

    def _search(self, metric: str, dims: str, stat: str = "Sum") -> cw.MathExpression:
        return cw.MathExpression(
            expression=(
                f'SEARCH(\'{{{m.NAMESPACE},{dims}}} service="{m.SERVICE}" MetricName="{metric}"\', '
                f"'{stat}', {int(self.period.to_seconds())})"
            ),
            using_metrics={},
            label="",
            period=self.period,
        )

    def _dashboard(self, w: Watched) -> cw.Dashboard:
        d = cw.Dashboard(self, "Dashboard", dashboard_name=f"nexus-{self.stage.name}")
        p = self.period
        d.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=3)
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Requests and errors",
                left=[
                    self._nexus(m.REQUESTS),
                    self._nexus(m.PROXY_ERRORS),
                    self._nexus(m.UPSTREAM_5XX),
                    self._nexus(m.UPSTREAM_429),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Latency (ms)",
                left=[
                    self._nexus(m.TTFB, "p50"),
                    self._nexus(m.TTFB, "p99"),
                    self._nexus(m.DURATION, "p50"),
                    self._nexus(m.DURATION, "p99"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Upstream errors by status",
                left=[self._search(m.UPSTREAM_ERRORS, "service,Status")],
                width=8,
            ),
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Output tokens by model and team",
                left=[self._search(m.OUTPUT_TOKENS, "service,Model,Team")],
                width=8,
            ),
            cw.GraphWidget(
                title="Input tokens (uncached / cache read / cache write)",
                left=[
                    self._search(m.INPUT_TOKENS, "service,Model,Team"),
                    self._search(m.CACHE_READ_TOKENS, "service,Model,Team"),
                    self._search(m.CACHE_WRITE_TOKENS, "service,Model,Team"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Cost (USD) by model and team",
                left=[self._search(m.COST, "service,Model,Team")],
                width=8,
            ),
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Queue",
                left=[
                    self.queue.queue.metric_approximate_number_of_messages_visible(period=p),
                    self.queue.dead_letters.metric_approximate_number_of_messages_visible(period=p),
                ],
                right=[
                    self.queue.queue.metric_approximate_age_of_oldest_message(period=p, statistic="Maximum"),
                    self._from_logs(m.RECORDS_SPILLED),
                    self._from_logs(m.RECORDS_UNSENT),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Ingest",
                left=[w.ingest.metric_invocations(period=p), w.ingest.metric_errors(period=p)],
                right=[
                    self._nexus(m.INGEST_DELAY, "p99"),
                    w.ingest.metric_duration(period=p, statistic="p99"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Proxy function",
                left=[
                    w.proxy.metric_invocations(period=p),
                    w.proxy.metric_errors(period=p),
                    w.proxy.metric_throttles(period=p),
                ],
                right=[w.proxy.metric("ConcurrentExecutions", period=p, statistic="Maximum")],
                width=8,
            ),
        )
        self._gateway_widgets(d, w.gateway, w.analysis)
        db = self.database.instance
        d.add_widgets(
            cw.GraphWidget(title="Database CPU %", left=[db.metric_cpu_utilization(period=p)], width=8),
            cw.GraphWidget(
                title="Database connections", left=[db.metric_database_connections(period=p)], width=8
            ),
            cw.GraphWidget(
                title="Database free storage (bytes)",
                left=[db.metric_free_storage_space(period=p, statistic="Minimum")],
                width=8,
            ),
        )
        return d

    def _gateway_widgets(self, d: cw.Dashboard, g: Gateway, analysis: sfn.StateMachine) -> None:
        p = self.period
        d.add_widgets(
            cw.GraphWidget(
                title="Gateway workers: sessions per task",
                left=[
                    self._gateway(m.GATEWAY_BUSY_SESSIONS, "Average"),
                    self._gateway(m.GATEWAY_WARM_SESSIONS, "Average"),
                ],
                right=[
                    g.task_count("RunningTaskCount", p),
                    g.task_count("DesiredTaskCount", p),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Gateway turns: rejected (429), errors, worker starts",
                left=[
                    self._gateway(m.GATEWAY_REJECTED),
                    self._gateway(m.GATEWAY_ERRORS),
                    self._gateway(m.GATEWAY_UNREACHABLE),
                    g.front.metric_errors(period=p),
                    g.router.metric_errors(period=p),
                ],
                right=[self._gateway(m.GATEWAY_WORKER_STARTS)],
                width=8,
            ),
            cw.GraphWidget(
                title="Gateway first delta (ms) and front calls",
                left=[
                    self._gateway(m.GATEWAY_FIRST_DELTA, "p50"),
                    self._gateway(m.GATEWAY_FIRST_DELTA, "p95"),
                ],
                right=[
                    g.front.metric_invocations(period=p),
                    g.front.metric("ConcurrentExecutions", period=p, statistic="Maximum"),
                ],
                width=8,
            ),
        )
        d.add_widgets(
            cw.GraphWidget(
                title="Gateway worker CPU and memory %",
                left=[
                    g.service.metric_cpu_utilization(period=p),
                    g.service.metric_memory_utilization(period=p),
                ],
                width=8,
            ),
            # The AI analysis pipeline shares the row: one run per execution.
            cw.GraphWidget(
                title="AI analysis runs",
                left=[
                    analysis.metric_started(period=p),
                    analysis.metric_succeeded(period=p),
                    analysis.metric_failed(period=p),
                    analysis.metric_timed_out(period=p),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="AI analysis run time (ms)",
                left=[
                    analysis.metric_time(period=p, statistic="p50"),
                    analysis.metric_time(period=p, statistic="p95"),
                ],
                width=8,
            ),
        )
