"""The dashboard: the FastAPI app behind Mangum (buffered responses) and a function URL.

In the VPC for the database. The URL is open at the network level; every page and API call needs the
dashboard key, which lives in Secrets Manager (read through the VPC endpoint, cached 5 minutes). The
keys page writes the keys document through the same endpoint.
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from nexus import env

from infra.context import StackContext
from infra.functions import database_function
from infra.identity import DashboardLogin


class Dashboard(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        stage, secrets = ctx.stage, ctx.secrets
        self.function = database_function(
            self,
            "Function",
            ctx,
            name="Dashboard",
            code="dashboard",
            handler="nexus_dashboard.handler.handle",
            service="nexus-dashboard",
            memory_mb=stage.dashboard_memory_mb,
            timeout_s=30,
            description="Nexus dashboard and JSON API",
            environment={
                env.DASHBOARD_KEY_SECRET: secrets.dashboard_key.secret_arn,
                env.SECRETS_PREFIX: secrets.prefix,
            },
        )
        secrets.dashboard_key.grant_read(self.function)
        secrets.grant_key_management(self.function)
        secrets.grant_budget_management(self.function)
        cors = (
            lambda_.FunctionUrlCorsOptions(
                allowed_origins=list(stage.allowed_origins),
                allowed_methods=[lambda_.HttpMethod.GET, lambda_.HttpMethod.POST, lambda_.HttpMethod.DELETE],
                allowed_headers=["authorization", "content-type"],
            )
            if stage.allowed_origins
            else None
        )
        self.url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE, invoke_mode=lambda_.InvokeMode.BUFFERED, cors=cors
        )
        self.login: DashboardLogin | None = None
        if stage.dashboard_login:
            self.login = DashboardLogin(self, "Login", stage=stage, function=self.function, url=self.url.url)
            for name, value in self.login.environment.items():
                self.function.add_environment(name, value)
