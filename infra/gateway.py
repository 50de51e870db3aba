"""The OpenAI-compatible gateway in AWS (ADR 0015): a streaming front outside the VPC, a router in the
VPC, and worker tasks on Fargate that run Claude Code.

    client -> front (function URL, RESPONSE_STREAM) -> InvokeWithResponseStream -> router (VPC)
           -> HTTP -> worker task (Cloud Map DNS name, rendezvous hashing on the route key)

Routing (route keys, rendezvous hashing, failover, draining) is the runtime's: ADR 16. The front
and the router are the proxy's shape (Lambda Web Adapter, a shell script that starts
uvicorn); the router has no URL and only the front may invoke it. The workers take traffic from the
router's security group alone, and send Claude Code's traffic through the Nexus proxy's public URL,
so every engine call is recorded like any other Claude Code session.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_servicediscovery as sd
from constructs import Construct
from nexus import env
from nexus import metrics as m
from nexus_gateway.settings import ENV_PREFIX

from infra import nag
from infra.context import StackContext
from infra.functions import Placement, log_retention, python_function
from infra.layers import ROOT
from infra.proxy import ADAPTER_PORT, web_adapter_layer_arn

DOCKERFILE = "functions/gateway/Dockerfile"
WORKERS_NAME = "workers"  # the Cloud Map service: workers.<namespace>
DNS_TTL_S = 10  # answers (and "no task yet") are cached this long
STOP_TIMEOUT_S = 120  # Fargate's maximum: a stopping worker finishes its turns first
# The worker's settings (nexus_gateway.settings.GatewaySettings: the field name, upper-cased).
PROXY_URL = f"{ENV_PREFIX}PROXY_URL"
REQUIRE_KEYS = f"{ENV_PREFIX}REQUIRE_KEYS"
MAX_SESSIONS = f"{ENV_PREFIX}MAX_SESSIONS"
PUBLISH_METRICS = f"{ENV_PREFIX}PUBLISH_METRICS"


def _web_adapter_env(port: str) -> dict[str, str]:
    return {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "AWS_LWA_PORT": port,
        "AWS_LWA_READINESS_CHECK_PATH": "/health",
    }


def origin(url: str) -> str:
    """``https://host`` of a function URL (which CloudFormation gives as ``https://host/``)."""
    return "https://" + cdk.Fn.select(2, cdk.Fn.split("/", url))


class Gateway(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext, *, proxy_url: str) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage = ctx.stage
        network, database, secrets = ctx.network, ctx.database, ctx.secrets
        port = env.DEFAULT_GATEWAY_WORKER_PORT
        adapter = lambda_.LayerVersion.from_layer_version_arn(
            self, "WebAdapter", web_adapter_layer_arn(stage)
        )

        # -- workers: ECS on Fargate, found through Cloud Map ------------------------------------------
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.namespace = sd.PrivateDnsNamespace(
            self, "Namespace", name=f"nexus-{stage.name}.internal", vpc=network.vpc
        )
        # Negative answers ("no task registered yet") are cached for the SOA's TTL: keep it as short
        # as the records', so a router waiting on a first task sees it within seconds.
        cfn_namespace = self.namespace.node.default_child
        assert isinstance(cfn_namespace, sd.CfnPrivateDnsNamespace)
        cfn_namespace.add_property_override("Properties.DnsProperties.SOA.TTL", DNS_TTL_S)

        self.worker_sg = ec2.SecurityGroup(
            self,
            "WorkerSg",
            vpc=network.vpc,
            allow_all_outbound=False,
            description="Nexus gateway workers: in from the router only",
        )
        # HTTPS anywhere: the proxy's public URL, ECR, CloudWatch Logs. Secrets Manager resolves to
        # the VPC's interface endpoint (private DNS), which must admit the workers.
        self.worker_sg.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Nexus proxy URL, ECR, CloudWatch Logs"
        )
        network.endpoint_sg.add_ingress_rule(self.worker_sg, ec2.Port.tcp(443), "gateway workers to AWS APIs")
        database.allow_from(self.worker_sg, "gateway workers")

        self.log_group = logs.LogGroup(
            self, "WorkerLogs", retention=log_retention(stage), removal_policy=cdk.RemovalPolicy.DESTROY
        )
        arm = stage.architecture == "arm64"
        self.task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=stage.gateway_worker_cpu,
            memory_limit_mib=stage.gateway_worker_memory_mb,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        # The build context is the repository; the .dockerignore next to it admits only what the
        # image needs (the lock file, the shared layer, the gateway package), so synth stages little.
        image = ecs.ContainerImage.from_asset(
            str(ROOT),
            file=DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64,
            build_args={"PYTHON_VERSION": stage.python_version},
            ignore_mode=cdk.IgnoreMode.DOCKER,
        )
        self.container = self.task.add_container(
            "Worker",
            image=image,
            port_mappings=[ecs.PortMapping(container_port=port, protocol=ecs.Protocol.TCP)],
            environment={
                env.STAGE: stage.name,
                PROXY_URL: origin(proxy_url),
                REQUIRE_KEYS: "1",
                MAX_SESSIONS: str(stage.gateway_sessions_per_task),
                PUBLISH_METRICS: "1",  # the busy/warm counts the service scales on (PutMetricData)
                "AWS_REGION": cdk.Aws.REGION,
                env.GATEWAY_WORKER_PORT: str(port),
                env.DB_SECRET_ARN: database.secret.secret_arn,
                env.SECRETS_PREFIX: secrets.prefix,
                "POWERTOOLS_SERVICE_NAME": m.GATEWAY_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": m.NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.log_group),
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; "
                    f"urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=3)",
                ],
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                retries=3,
                start_period=cdk.Duration.seconds(60),
            ),
            stop_timeout=cdk.Duration.seconds(STOP_TIMEOUT_S),
        )
        # Least privilege, as the dashboard's: the database credentials and the access documents.
        database.secret.grant_read(self.task.task_role)
        for secret in (secrets.keys, secrets.teams):
            secret.grant_read(self.task.task_role)
        # A container's stdout is not read for embedded metrics: the worker calls PutMetricData, which
        # has no resource-level scoping; the condition holds it to the Nexus namespace.
        self.task.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": m.NAMESPACE}},
            )
        )
        nag.acknowledge(
            self.task.task_role,
            "IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource-level scoping; a condition limits it to the "
            "Nexus namespace, where the workers publish the load the service scales on.",
        )
        nag.acknowledge(
            self.task,
            "ECS2",
            "The workers' environment holds settings and the ARNs/names of secrets, never a secret "
            "value (the infrastructure tests check it); values are read from Secrets Manager at start.",
        )
        assert self.task.execution_role is not None
        nag.acknowledge(
            self.task.execution_role,
            "IAM5[Resource::*]",
            "ECS's execution role: ecr:GetAuthorizationToken supports no resource-level scoping (the "
            "image pull itself is limited to the asset repository).",
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task,
            desired_count=stage.gateway_min_tasks,
            min_healthy_percent=100,  # a deploy starts new workers before it stops old ones
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=network.workers_subnets,
            assign_public_ip=network.workers_public_ip,
            security_groups=[self.worker_sg],
            cloud_map_options=ecs.CloudMapOptions(
                cloud_map_namespace=self.namespace,
                name=WORKERS_NAME,
                dns_record_type=sd.DnsRecordType.A,
                dns_ttl=cdk.Duration.seconds(DNS_TTL_S),
                container=self.container,
                container_port=port,
            ),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.workers_dns = f"{WORKERS_NAME}.{self.namespace.namespace_name}"

        # -- router: in the VPC, invoked by the front only ---------------------------------------------
        self.router_sg = ec2.SecurityGroup(
            self,
            "RouterSg",
            vpc=network.vpc,
            allow_all_outbound=False,
            description="Nexus gateway router: out to the workers only",
        )
        self.worker_sg.add_ingress_rule(self.router_sg, ec2.Port.tcp(port), "gateway router")
        # Inline (by group id), so the group's egress list is exactly this rule: a group whose rules
        # all live in separate resources would keep EC2's default allow-all egress rule.
        self.router_sg.add_egress_rule(
            ec2.Peer.security_group_id(self.worker_sg.security_group_id),
            ec2.Port.tcp(port),
            "gateway workers",
        )
        self.router = python_function(
            self,
            "Router",
            ctx,
            code="gateway",
            handler="router.sh",
            service=m.GATEWAY_SERVICE,
            memory_mb=stage.gateway_router_memory_mb,
            timeout_s=stage.gateway_timeout_s,
            extra_layers=(adapter,),
            placement=Placement(network.vpc, network.app_subnets, self.router_sg),
            description="Nexus gateway router: relays a turn to the worker that holds its session",
            environment={
                **_web_adapter_env(ADAPTER_PORT),
                env.GATEWAY_WORKERS: self.workers_dns,
                env.GATEWAY_WORKER_PORT: str(port),
            },
        )

        # -- front: the public, streaming entry ------------------------------------------------------
        self.front = python_function(
            self,
            "Front",
            ctx,
            code="gateway",
            handler="front.sh",
            service=m.GATEWAY_SERVICE,
            memory_mb=stage.gateway_front_memory_mb,
            timeout_s=stage.gateway_timeout_s,
            extra_layers=(adapter,),
            description="Nexus gateway: OpenAI-compatible API (streamed)",
            environment={
                **_web_adapter_env(ADAPTER_PORT),
                env.GATEWAY_ROUTER_FUNCTION: self.router.function_name,
            },
        )
        # InvokeWithResponseStream is authorised by lambda:InvokeFunction; the function itself only
        # (no ":*" qualifiers: the front calls the unqualified router).
        self.front.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.router.function_arn])
        )
        # OpenAI clients cannot sign SigV4: the URL is open and the gateway authenticates (Nexus keys).
        self.url = self.front.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
        )

        self._scaling()

    # -- scaling -----------------------------------------------------------------------------------------

    def _scaling(self) -> None:
        stage = self.stage
        scaling = self.service.auto_scale_task_count(
            min_capacity=stage.gateway_min_tasks, max_capacity=stage.gateway_max_tasks
        )
        # Each worker publishes its busy-session count once a minute; the Average over tasks is the
        # load per task, which target tracking holds at the configured share of a task's sessions.
        scaling.scale_to_track_custom_metric(
            "BusySessions",
            metric=self.busy_sessions("Average"),
            target_value=stage.gateway_busy_target,
            scale_out_cooldown=cdk.Duration.seconds(stage.gateway_scale_out_cooldown_s),
            scale_in_cooldown=cdk.Duration.seconds(stage.gateway_scale_in_cooldown_s),
        )
        if stage.gateway_min_tasks == 0:
            # From zero no task publishes the busy metric, so target tracking cannot act: one task is
            # started when the router is invoked while none runs (ADR 0015: the first turn waits).
            scaling.scale_on_metric(
                "FromZero",
                metric=self.wanted_from_zero(),
                scaling_steps=[
                    appscaling.ScalingInterval(upper=0, change=0),
                    appscaling.ScalingInterval(lower=1, change=1),
                ],
                adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
                cooldown=cdk.Duration.seconds(180),  # longer than a task's start: one task per wake-up
                evaluation_periods=1,
            )

    def busy_sessions(self, stat: str, period: cdk.Duration | None = None) -> cw.Metric:
        return cw.Metric(
            namespace=m.NAMESPACE,
            metric_name=m.GATEWAY_BUSY_SESSIONS,
            dimensions_map={"service": m.GATEWAY_SERVICE},
            statistic=stat,
            period=period or cdk.Duration.minutes(1),
        )

    def task_count(self, name: str, period: cdk.Duration | None = None) -> cw.Metric:
        """Container Insights' ``RunningTaskCount`` / ``DesiredTaskCount`` of the worker service."""
        return cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name=name,
            dimensions_map={
                "ClusterName": self.cluster.cluster_name,
                "ServiceName": self.service.service_name,
            },
            statistic="Average",
            period=period or cdk.Duration.minutes(1),
        )

    def wanted_from_zero(self) -> cw.MathExpression:
        """1 when the router was invoked in the last minute and no worker task runs, else 0."""
        minute = cdk.Duration.minutes(1)
        return cw.MathExpression(
            expression="IF(FILL(inv, 0) > 0 AND FILL(running, 0) == 0, 1, 0)",
            using_metrics={
                "inv": self.router.metric_invocations(period=minute, statistic="Sum"),
                "running": self.task_count("RunningTaskCount", minute),
            },
            label="router invoked, no worker running",
            period=minute,
        )
