# Security groups: the agent port of the machines only from the gateway and the runner; the gateway only from
# the load balancer (and its admin port only from the runner); the load balancer on 443 only from
# var.gateway_allowed_cidrs; the runner takes no inbound traffic at all. Egress is listed port by port too.

resource "aws_security_group" "machines" {
  # checkov:skip=CKV2_AWS_5:Attached by the runner to the gitspace machines it creates (config.securityGroupIds), not by Terraform.
  name        = "${local.p}-machines"
  description = "Gitspace machines: the agent port from the gateway and the runner only"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.p}-machines" }
}

resource "aws_security_group" "gateway" {
  name        = "${local.p}-gateway"
  description = "CDE gateway: its listener from the load balancer, its admin port from the runner"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.p}-gateway" }
}

resource "aws_security_group" "runner" {
  name        = "${local.p}-runner"
  description = "Runner: no inbound traffic"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.p}-runner" }
}

resource "aws_security_group" "load_balancer" {
  name        = "${local.p}-load-balancer"
  description = "Gateway load balancer: 443 from the allowed ranges"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${local.p}-load-balancer" }
}

# --- Inbound ---

resource "aws_vpc_security_group_ingress_rule" "agent_from_gateway" {
  security_group_id            = aws_security_group.machines.id
  description                  = "agent from the gateway"
  ip_protocol                  = "tcp"
  from_port                    = local.agent_port
  to_port                      = local.agent_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_vpc_security_group_ingress_rule" "agent_from_runner" {
  security_group_id            = aws_security_group.machines.id
  description                  = "agent from the runner"
  ip_protocol                  = "tcp"
  from_port                    = local.agent_port
  to_port                      = local.agent_port
  referenced_security_group_id = aws_security_group.runner.id
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_load_balancer" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "gateway listener from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.load_balancer.id
}

resource "aws_vpc_security_group_ingress_rule" "gateway_admin_from_runner" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "gateway admin API from the runner"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_admin_port
  to_port                      = local.gateway_admin_port
  referenced_security_group_id = aws_security_group.runner.id
}

resource "aws_vpc_security_group_ingress_rule" "load_balancer_https" {
  for_each          = toset(var.gateway_allowed_cidrs)
  security_group_id = aws_security_group.load_balancer.id
  description       = "HTTPS from an allowed range"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

# --- Outbound ---

locals {
  egress_rules = merge(
    { for port in var.machine_egress_ports : "machines-internet-${port}" => {
      sg = aws_security_group.machines.id, port = port, cidr = "0.0.0.0/0", to_sg = null, what = "machines to the internet (NAT)"
    } },
    {
      "gateway-agent"         = { sg = aws_security_group.gateway.id, port = local.agent_port, cidr = null, to_sg = aws_security_group.machines.id, what = "gateway to the machines' agent" }
      "gateway-https"         = { sg = aws_security_group.gateway.id, port = 443, cidr = "0.0.0.0/0", to_sg = null, what = "gateway to the control plane (JWKS), Secrets Manager, packages" }
      "gateway-http"          = { sg = aws_security_group.gateway.id, port = 80, cidr = "0.0.0.0/0", to_sg = null, what = "gateway to the Debian mirrors" }
      "runner-agent"          = { sg = aws_security_group.runner.id, port = local.agent_port, cidr = null, to_sg = aws_security_group.machines.id, what = "runner to the machines' agent" }
      "runner-gateway-admin"  = { sg = aws_security_group.runner.id, port = local.gateway_admin_port, cidr = null, to_sg = aws_security_group.gateway.id, what = "runner to the gateway admin API" }
      "runner-https"          = { sg = aws_security_group.runner.id, port = 443, cidr = "0.0.0.0/0", to_sg = null, what = "runner to the AWS APIs and packages" }
      "runner-http"           = { sg = aws_security_group.runner.id, port = 80, cidr = "0.0.0.0/0", to_sg = null, what = "runner to the Debian mirrors" }
      "load-balancer-gateway" = { sg = aws_security_group.load_balancer.id, port = local.gateway_port, cidr = null, to_sg = aws_security_group.gateway.id, what = "load balancer to the gateway" }
    },
    contains([80, 443], local.temporal_port) ? {} : {
      "runner-temporal" = { sg = aws_security_group.runner.id, port = local.temporal_port, cidr = "0.0.0.0/0", to_sg = null, what = "runner to Temporal" }
    },
  )
}

resource "aws_vpc_security_group_egress_rule" "this" {
  for_each                     = local.egress_rules
  security_group_id            = each.value.sg
  description                  = each.value.what
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  cidr_ipv4                    = each.value.cidr
  referenced_security_group_id = each.value.to_sg
}
