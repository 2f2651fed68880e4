# --- The gateway and the runner VMs: private addresses only (their subnet hands out none and routes through NAT),
# IMDSv2, encrypted disks, started by user data that installs the released package as a systemd service. ---

data "aws_ami" "debian" {
  count       = var.service_ami == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian
  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

locals {
  # The package each VM installs: a URL, or an object of the release bucket (read through the S3 endpoint).
  gateway_package_url = var.gateway_package_url != null ? var.gateway_package_url : var.gateway_package_object != null ? "${local.release_base_url}/${var.gateway_package_object}" : ""
  runner_package_url  = var.runner_package_url != null ? var.runner_package_url : var.runner_package_object != null ? "${local.release_base_url}/${var.runner_package_object}" : ""

  service_ami = var.service_ami != null ? var.service_ami : data.aws_ami.debian[0].id

  gateway_env = {
    GITSPACES_GATEWAY_HOST       = "0.0.0.0"
    GITSPACES_GATEWAY_PORT       = tostring(local.gateway_port)
    GITSPACES_GATEWAY_ADMIN_HOST = "0.0.0.0"
    GITSPACES_GATEWAY_ADMIN_PORT = tostring(local.gateway_admin_port)
    GITSPACES_GATEWAY_DOMAIN     = var.domain
    # The load balancer's nodes live in the public subnets, where no instance runs: only they are believed about
    # X-Forwarded-For.
    GITSPACES_GATEWAY_TRUSTED_PROXIES = join(",", local.public_cidrs)
    GITSPACES_JWKS_URL                = "${trimsuffix(var.control_plane_url, "/")}/api/v1/.well-known/jwks.json"
    GITSPACES_DATA_DIR                = "/var/lib/gitspaces-gateway"
  }
  runner_env = merge(
    {
      GITSPACES_INFRASTRUCTURE_ID = coalesce(var.infrastructure_id, "unset")
      GITSPACES_INSTALLATION_ID   = var.installation_id
      GITSPACES_GATEWAY_ADMIN_URL = "http://${aws_instance.gateway.private_ip}:${local.gateway_admin_port}"
      GITSPACES_DATA_DIR          = "/var/lib/gitspaces-runner"
      TEMPORAL_ADDRESS            = var.temporal_address
      TEMPORAL_NAMESPACE          = var.temporal_namespace
      TEMPORAL_TLS                = tostring(var.temporal_tls)
    },
    var.repository_secret_store ? { GITSPACES_SECRET_STORE = "aws:${var.region}" } : {},
    var.work_order_public_key == null ? {} : { GITSPACES_WORK_ORDER_PUBLIC_KEY = var.work_order_public_key },
  )
}

# Two resources, not one per role as in the GCP module: the runner's user data holds the gateway's private address,
# which AWS assigns at launch, so one for_each resource would depend on itself.
resource "aws_instance" "gateway" {
  ami                         = local.service_ami
  instance_type               = var.gateway_instance_type
  subnet_id                   = aws_subnet.services.id
  vpc_security_group_ids      = [aws_security_group.gateway.id]
  iam_instance_profile        = aws_iam_instance_profile.gateway.name
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    volume_size = 20
    volume_type = "gp3"
  }

  user_data = templatefile("${path.module}/templates/startup.sh.tftpl", {
    role           = "gateway"
    region         = var.region
    package_url    = local.gateway_package_url
    package_sha256 = var.gateway_package_sha256 == null ? "" : var.gateway_package_sha256
    service        = var.gateway_service
    env            = local.gateway_env
    secrets        = { GITSPACES_GATEWAY_ADMIN_TOKEN = aws_secretsmanager_secret.this["gateway_admin_token"].name }
    start          = true
  })

  tags = { Name = "${local.p}-gateway" }

  lifecycle {
    precondition {
      condition     = (var.gateway_package_url != null && var.gateway_package_object != null) == false && (local.gateway_package_url == "") == (var.gateway_package_sha256 == null)
      error_message = "gateway_package_sha256 goes with one of gateway_package_url and gateway_package_object."
    }
  }

  depends_on = [aws_route.private_nat, aws_vpc_endpoint.s3, aws_s3_bucket_policy.releases]
}

resource "aws_instance" "runner" {
  ami                         = local.service_ami
  instance_type               = var.runner_instance_type
  subnet_id                   = aws_subnet.services.id
  vpc_security_group_ids      = [aws_security_group.runner.id]
  iam_instance_profile        = aws_iam_instance_profile.runner.name
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted   = true
    volume_size = 20
    volume_type = "gp3"
  }

  user_data = templatefile("${path.module}/templates/startup.sh.tftpl", {
    role           = "runner"
    region         = var.region
    package_url    = local.runner_package_url
    package_sha256 = var.runner_package_sha256 == null ? "" : var.runner_package_sha256
    service        = var.runner_service
    env            = local.runner_env
    secrets = {
      GITSPACES_GATEWAY_ADMIN_TOKEN = aws_secretsmanager_secret.this["gateway_admin_token"].name
      GITSPACES_RUNNER_KEYS         = aws_secretsmanager_secret.this["runner_keys"].name
      GITSPACES_PAYLOAD_KEYS        = aws_secretsmanager_secret.this["runner_payload_keys"].name
      TEMPORAL_API_KEY              = aws_secretsmanager_secret.this["temporal_api_key"].name
    }
    # The runner serves one infrastructure: it starts once the control plane has given it an id.
    start = var.infrastructure_id != null
  })

  tags = { Name = "${local.p}-runner" }

  lifecycle {
    precondition {
      condition     = (var.runner_package_url != null && var.runner_package_object != null) == false && (local.runner_package_url == "") == (var.runner_package_sha256 == null)
      error_message = "runner_package_sha256 goes with one of runner_package_url and runner_package_object."
    }
  }

  depends_on = [aws_route.private_nat, aws_vpc_endpoint.s3, aws_s3_bucket_policy.releases]
}
