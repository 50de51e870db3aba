"""The AI analysis pipeline: a Step Functions state machine over the analysis Lambdas.

load+condense -> Map over chunks (read -> model call -> validate -> once more with the error) ->
combine when there were several chunks (the same sub-graph, as a one-item Map) -> store -> notify
(an EventBridge event). Model calls retry with backoff on 429/529/timeouts; any failure is caught and
recorded as the run's reason (``record_failure``) before the execution fails. Retry numbers and
timeouts come from ``nexus.analysis.pipeline``, which ``nexus dev``'s runner reads too.

The data function is in the VPC (the database); the model function is not (it calls the proxy's
public URL). Queued runs are started by the dashboard and by the idle sweep (an EventBridge schedule),
both in the VPC: they reach Step Functions through an interface endpoint.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from nexus import env
from nexus.analysis import pipeline as p

from infra import nag
from infra.context import StackContext
from infra.functions import database_function, log_retention, python_function

SWEEP_EVERY_MINUTES = 5
EVENT_SOURCE = "nexus.analysis"
EVENT_DONE = "Nexus analysis done"


class Analysis(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext, *, proxy_url: str) -> None:
        super().__init__(scope, construct_id)
        secrets = ctx.secrets
        common = {env.SECRETS_PREFIX: secrets.prefix}
        self.data = database_function(
            self,
            "Data",
            ctx,
            name="Analysis",
            code="analysis",
            handler="nexus_analysis.handler.data",
            service="nexus-analysis",
            memory_mb=512,
            timeout_s=p.DATA_STEP_TIMEOUT_S,
            environment=common,
            description="Nexus analysis: load and condense, read chunks, store results and failures",
        )
        self.model = python_function(
            self,
            "Model",
            ctx,
            code="analysis",
            handler="nexus_analysis.handler.model",
            service="nexus-analysis",
            memory_mb=256,
            timeout_s=p.CALL_STEP_TIMEOUT_S,
            environment={**common, env.ANALYSIS_PROXY_URL: proxy_url},
            description="Nexus analysis: the model call (through the Nexus proxy) and its validation",
        )
        for fn in (self.data, self.model):
            secrets.analysis.grant_read(fn)
        if ctx.stage.analysis_bedrock_region:
            self._grant_bedrock(ctx.stage.analysis_bedrock_region)

        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            retention=log_retention(ctx.stage),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Pipeline",
            definition_body=sfn.DefinitionBody.from_chainable(self._definition()),
            timeout=cdk.Duration.seconds(p.EXECUTION_TIMEOUT_S),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        assert self.state_machine.role is not None
        nag.acknowledge(
            self.state_machine.role,
            "IAM5[Resource::*]",
            "Log delivery to CloudWatch Logs and X-Ray tracing: those actions support no resource scoping.",
        )
        for fn in (self.data, self.model):
            nag.acknowledge(
                self.state_machine.role,
                f"IAM5[Resource::{nag.flatten(self, fn.function_arn)}:*]",
                "Invoking the pipeline's own functions, any version (CDK's grant for a Lambda task).",
            )

        # The idle sweep: queue opted-in teams' idle conversations, start an execution for each.
        self.sweep = database_function(
            self,
            "Sweep",
            ctx,
            name="AnalysisSweep",
            code="analysis",
            handler="nexus_analysis.handler.sweep",
            service="nexus-analysis",
            memory_mb=256,
            timeout_s=60,
            reserved_concurrency=1,
            environment={**common, env.ANALYSIS_STATE_MACHINE: self.state_machine.state_machine_arn},
            description="Nexus analysis: queue idle conversations of opted-in teams (daily caps)",
        )
        secrets.analysis.grant_read(self.sweep)
        self.state_machine.grant_start_execution(self.sweep)
        self.schedule = events.Rule(
            self,
            "Idle sweep",
            schedule=events.Schedule.rate(cdk.Duration.minutes(SWEEP_EVERY_MINUTES)),
            targets=[targets.LambdaFunction(self.sweep, retry_attempts=0)],
        )
        # Functions in the VPC start executions through this endpoint (the app subnets have no route out).
        network = ctx.network
        self.endpoint = network.vpc.add_interface_endpoint(
            "StepFunctionsEndpoint",
            service=ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
            subnets=network.app_subnets,
            security_groups=[network.endpoint_sg],
            open=False,  # the functions' security groups are admitted one by one (network.py)
        )

    def _grant_bedrock(self, region: str) -> None:
        """Model calls to Bedrock instead of the proxy: Anthropic's models, invoked directly or through
        an inference profile. A cross-region profile routes to the model in any of its regions, so the
        foundation-model ARN cannot name one."""
        self.model.add_environment(env.ANALYSIS_BEDROCK_REGION, region)
        stack = cdk.Stack.of(self)
        self.model.add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[
                    f"arn:{stack.partition}:bedrock:*::foundation-model/anthropic.*",
                    f"arn:{stack.partition}:bedrock:*:{stack.account}:inference-profile/*anthropic.*",
                ],
            )
        )
        assert self.model.role is not None
        nag.acknowledge(
            self.model.role,
            "IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/anthropic.*]",
            "Bedrock: any Anthropic model, in any region a cross-region inference profile routes to; "
            "the model is chosen in the analysis settings, not at deploy time.",
        )
        nag.acknowledge(
            self.model.role,
            f"IAM5[Resource::arn:<AWS::Partition>:bedrock:*:{nag.flatten(self, stack.account)}"
            ":inference-profile/*anthropic.*]",
            "Bedrock: the account's inference profiles of Anthropic models (cross-region or "
            "application profiles), chosen in the analysis settings.",
        )

    def grant_start(self, fn: lambda_.Function) -> None:
        """A function that queues runs (the dashboard): it starts executions and is told the ARN."""
        self.state_machine.grant_start_execution(fn)
        fn.add_environment(env.ANALYSIS_STATE_MACHINE, self.state_machine.state_machine_arn)

    # -- the definition ---------------------------------------------------------------------------------

    def _task(
        self, name: str, fn: lambda_.IFunction, step: str, result_path: str, timeout_s: int
    ) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self,
            name,
            lambda_function=fn,
            payload=sfn.TaskInput.from_object({"step": step, "state": sfn.JsonPath.entire_payload}),
            payload_response_only=True,
            result_path=result_path,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(cdk.Duration.seconds(timeout_s)),
        )

    def _analyse_item(self, prefix: str) -> sfn.IChainable:
        """One item (a chunk, or the chunks' analyses to combine): read -> call -> validate, once more
        with the validation error, then done or failed (``InvalidAnalysis``)."""
        read = self._task(f"{prefix}: read chunk", self.data, "read_chunk", "$", p.DATA_STEP_TIMEOUT_S)
        call = self._task(f"{prefix}: call model", self.model, "call", "$.answer", p.CALL_STEP_TIMEOUT_S)
        call.add_retry(
            errors=[*p.RETRYABLE, "States.Timeout"],
            interval=cdk.Duration.seconds(p.RETRY_INTERVAL_S),
            backoff_rate=p.RETRY_BACKOFF,
            max_attempts=p.RETRY_MAX_ATTEMPTS,
        )
        check = self._task(
            f"{prefix}: validate", self.model, "validate", "$.validation", p.DATA_STEP_TIMEOUT_S
        )
        done = sfn.Pass(
            self,
            f"{prefix}: valid",
            parameters={"analysis.$": "$.validation.analysis", "usage.$": "$.validation.usage"},
        )
        again = sfn.Pass(
            self,
            f"{prefix}: try again with the error",
            parameters={
                "kind.$": "$.kind",
                "analysis_id.$": "$.analysis_id",
                "index.$": "$.index",
                "count.$": "$.count",
                "facts.$": "$.facts",
                "material.$": "$.material",
                "attempt.$": "States.MathAdd($.attempt, 1)",
                "previous.$": "$.answer.text",
                "feedback.$": "$.validation.error",
                "usage.$": "$.validation.usage",
            },
        )
        # The cause carries the validation result whole: its error, and the usage of the invalid answers
        # (recorded with the failure: those tokens were spent).
        invalid = sfn.Fail(
            self,
            f"{prefix}: still invalid",
            error=p.INVALID,
            cause_path=sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.validation")),
        )
        verdict = (
            sfn.Choice(self, f"{prefix}: valid?")
            .when(sfn.Condition.boolean_equals("$.validation.valid", True), done)
            .when(sfn.Condition.number_less_than("$.attempt", p.VALIDATION_RETRIES), again.next(call))
            .otherwise(invalid)
        )
        call.next(check).next(verdict)
        return (
            sfn.Choice(self, f"{prefix}: a chunk?")
            .when(sfn.Condition.string_equals("$.kind", "chunk"), read.next(call))
            .otherwise(call)
        )

    def _definition(self) -> sfn.IChainable:
        failed = sfn.Fail(self, "Analysis failed", error="AnalysisFailed", cause_path="$.reason")
        record = self._task("Record the failure", self.data, "record_failure", "$", p.DATA_STEP_TIMEOUT_S)
        record.next(failed)

        load = self._task("Load and condense", self.data, "load", "$", p.DATA_STEP_TIMEOUT_S)
        chunks = sfn.Map(
            self,
            "Analyse chunks",
            items_path="$.chunks",
            max_concurrency=p.MAP_CONCURRENCY,
            result_path="$.partials",
        ).item_processor(self._analyse_item("Chunk"))
        combine_input = sfn.Pass(
            self,
            "Combine input",
            parameters={
                "kind": "combine",
                "analysis_id.$": "$.analysis_id",
                "facts.$": "$.facts",
                "material.$": "$.partials",
                "index": 0,
                "count": 1,
                "attempt": 0,
                "usage": [],
            },
            result_path="$.combine_item",
        )
        combine_list = sfn.Pass(
            self,
            "Combine list",
            parameters={"items.$": "States.Array($.combine_item)"},
            result_path="$.combine_list",
        )
        combine = sfn.Map(
            self,
            "Combine chunks",
            items_path="$.combine_list.items",
            max_concurrency=1,
            result_path="$.combined",
        ).item_processor(self._analyse_item("Combine"))
        store = self._task("Store", self.data, "store", "$.result", p.DATA_STEP_TIMEOUT_S)
        notify = tasks.EventBridgePutEvents(
            self,
            "Notify",
            entries=[
                tasks.EventBridgePutEventsEntry(
                    detail=sfn.TaskInput.from_json_path_at("$.result"),
                    detail_type=EVENT_DONE,
                    source=EVENT_SOURCE,
                )
            ],
            result_path=sfn.JsonPath.DISCARD,
        )
        for step in (load, chunks, combine, store):
            step.add_catch(record, result_path="$.error")
        unchanged = sfn.Succeed(self, "Unchanged: not analysed again")
        store.next(notify).next(sfn.Succeed(self, "Analysed"))
        several = (
            sfn.Choice(self, "Several chunks?")
            .when(
                sfn.Condition.number_greater_than("$.chunk_count", 1),
                combine_input.next(combine_list).next(combine).next(store),
            )
            .otherwise(store)
        )
        return load.next(
            sfn.Choice(self, "Already analysed?")
            .when(sfn.Condition.boolean_equals("$.skip", True), unchanged)
            .otherwise(chunks.next(several))
        )
