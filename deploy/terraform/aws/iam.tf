# --- Identities ---------------------------------------------------------------------------------------------
# runner:  the one identity with cloud permissions: exactly runner-permissions.json, scoped to this VPC's machines
#          subnet and security group and to resources tagged with this installation.
# gateway: reads its own secret; nothing else.
# machines: no instance profile at all (config.instanceProfile is left out), so they hold no AWS credentials.

locals {
  arn_prefix       = "arn:${data.aws_partition.current.partition}"
  ec2_arn          = "${local.arn_prefix}:ec2:${var.region}:${data.aws_caller_identity.current.account_id}"
  installation_tag = "gitspaces-installation" # providers/naming.ts MACHINE_LABELS.installation
  grants           = local.permissions.grants

  runner_statements = concat(
    [
      {
        Sid      = "Describe"
        Effect   = "Allow"
        Action   = local.grants.describe.actions
        Resource = "*"
      },
      {
        Sid    = "LaunchTagged"
        Effect = "Allow"
        Action = local.grants.launchTagged.actions
        Resource = [
          "${local.ec2_arn}:instance/*",
          "${local.ec2_arn}:volume/*",
          "${local.ec2_arn}:network-interface/*",
        ]
        Condition = { StringEquals = { "aws:RequestTag/${local.installation_tag}" = var.installation_id } }
      },
      {
        Sid    = "LaunchUsing"
        Effect = "Allow"
        Action = local.grants.launchUsing.actions
        Resource = [
          aws_subnet.machines.arn,
          aws_security_group.machines.arn,
          "${local.arn_prefix}:ec2:${var.region}::image/*",
        ]
      },
      {
        Sid       = "TagOnLaunch"
        Effect    = "Allow"
        Action    = local.grants.tagOnLaunch.actions
        Resource  = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*", "${local.ec2_arn}:network-interface/*"]
        Condition = { StringEquals = { "ec2:CreateAction" = "RunInstances" } }
      },
      {
        Sid       = "OwnedInstances"
        Effect    = "Allow"
        Action    = local.grants.ownedInstances.actions
        Resource  = "${local.ec2_arn}:instance/*"
        Condition = { StringEquals = { "aws:ResourceTag/${local.installation_tag}" = var.installation_id } }
      },
      {
        Sid      = "RetagOwned"
        Effect   = "Allow"
        Action   = local.grants.retagOwned.actions
        Resource = ["${local.ec2_arn}:instance/*", "${local.ec2_arn}:volume/*"]
        Condition = {
          StringEquals = { "aws:ResourceTag/${local.installation_tag}" = var.installation_id }
          # Only the tags that name a machine's gitspace (providers/naming.ts); never the installation tag.
          "ForAllValues:StringEquals" = { "aws:TagKeys" = ["gitspace-id", "Name"] }
        }
      },
      {
        Sid       = "OwnedVolumes"
        Effect    = "Allow"
        Action    = local.grants.ownedVolumes.actions
        Resource  = "${local.ec2_arn}:volume/*"
        Condition = { StringEquals = { "aws:ResourceTag/${local.installation_tag}" = var.installation_id } }
      },
      {
        Sid      = "OwnSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [for key, secret in aws_secretsmanager_secret.this : secret.arn if contains(local.secrets[key].readers, "runner")]
      },
    ],
    var.repository_secret_store ? [{
      Sid    = "RepositorySecrets"
      Effect = "Allow"
      Action = local.grants.repositorySecrets.actions
      Resource = [
        "${local.arn_prefix}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:gitspaces/shared/*",
        "${local.arn_prefix}:secretsmanager:${var.region}:${data.aws_caller_identity.current.account_id}:secret:gitspaces/users/*",
      ]
    }] : [],
  )

  ec2_assume_role = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role" "runner" {
  name               = "${local.p}-runner"
  description        = "Gitspaces runner: creates and manages gitspace machines"
  assume_role_policy = local.ec2_assume_role
}

resource "aws_iam_role_policy" "runner" {
  name   = "gitspaces-runner"
  role   = aws_iam_role.runner.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.runner_statements })
}

resource "aws_iam_instance_profile" "runner" {
  name = "${local.p}-runner"
  role = aws_iam_role.runner.name
}

resource "aws_iam_role" "gateway" {
  name               = "${local.p}-gateway"
  description        = "Gitspaces CDE gateway: reads its own secret"
  assume_role_policy = local.ec2_assume_role
}

resource "aws_iam_role_policy" "gateway" {
  name = "gitspaces-gateway"
  role = aws_iam_role.gateway.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "OwnSecrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [for key, secret in aws_secretsmanager_secret.this : secret.arn if contains(local.secrets[key].readers, "gateway")]
    }]
  })
}

resource "aws_iam_instance_profile" "gateway" {
  name = "${local.p}-gateway"
  role = aws_iam_role.gateway.name
}
