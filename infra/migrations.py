"""Schema migrations on every deploy: a custom resource runs ``nexus.db.migrate`` in the VPC.

The resource's properties carry a hash of the migration files, so CloudFormation calls the function
again exactly when a migration was added; a failing migration fails (and rolls back) the deploy.
Ingest and the dashboard depend on it, so new code never runs against an old schema.
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra import nag
from infra.context import StackContext
from infra.functions import database_function, log_retention
from infra.layers import ROOT

MIGRATIONS = ROOT / "layers" / "shared" / "python" / "nexus" / "db" / "migrations"


def migrations_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class Migrations(Construct):
    def __init__(self, scope: Construct, construct_id: str, ctx: StackContext) -> None:
        super().__init__(scope, construct_id)
        self.function = database_function(
            self,
            "Function",
            ctx,
            name="Migrate",
            code="migrate",
            handler="nexus_migrate.handler.handle",
            service="nexus-migrate",
            memory_mb=512,
            timeout_s=600,
            description="Nexus schema migrations (run by CloudFormation on deploy)",
        )
        provider_logs = logs.LogGroup(
            self, "ProviderLogs", retention=log_retention(ctx.stage), removal_policy=cdk.RemovalPolicy.DESTROY
        )
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.function, log_group=provider_logs)
        # cr.Provider has no handle on the framework function it creates (only its service token), so
        # these are acknowledged on the provider: under it is only that function and its role (the
        # migration function is not the provider's child). A role of our own (framework_on_event_role)
        # would be a handle, but a different resource in the template.
        nag.acknowledge(
            self.provider,
            f"IAM4[{nag.BASIC_ROLE}]",
            "CDK's custom-resource framework function writes only its logs.",
        )
        nag.acknowledge(
            self.provider,
            f"IAM5[Resource::{nag.flatten(self, self.function.function_arn)}:*]",
            "The CDK provider framework may invoke any version of the migration function, nothing else.",
        )
        self.resource = cdk.CustomResource(
            self,
            "Run",
            service_token=self.provider.service_token,
            resource_type="Custom::NexusMigrations",
            properties={"MigrationsHash": migrations_hash()},
        )
        self.resource.node.add_dependency(ctx.database.instance)
