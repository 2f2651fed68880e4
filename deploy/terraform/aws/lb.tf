# --- The gateway behind an Application Load Balancer with an ACM certificate for the domain and its wildcard
# (<id>.<domain> host routing); only var.gateway_allowed_cidrs reach it, on 443 only. ---

resource "aws_acm_certificate" "gateway" {
  domain_name               = var.domain
  subject_alternative_names = ["*.${var.domain}"]
  validation_method         = "DNS"
  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # The apex and the wildcard share one validation record.
  certificate_validation = {
    for domain, options in {
      for option in aws_acm_certificate.gateway.domain_validation_options : trimprefix(option.domain_name, "*.") => option...
    } : domain => options[0]
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each        = var.route53_zone_id == null ? {} : local.certificate_validation
  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "gateway" {
  count                   = var.wait_for_certificate ? 1 : 0
  certificate_arn         = aws_acm_certificate.gateway.arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

resource "aws_lb" "gateway" {
  # checkov:skip=CKV2_AWS_28:No WAF by default: the security group admits only var.gateway_allowed_cidrs, and every request needs a gateway access token. Attach a web ACL to this load balancer if you want one.
  name                       = "${local.p}-gateway"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.load_balancer.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.load_balancer_deletion_protection
  # Also the longest an idle WebSocket (an IDE session) stays open.
  idle_timeout = 3600

  dynamic "access_logs" {
    for_each = var.load_balancer_access_logs_bucket == null ? [] : [var.load_balancer_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = "${local.p}-gateway"
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "gateway" {
  # checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the gateway stays inside the VPC, between two security groups that admit only each other.
  name        = "${local.p}-gateway"
  port        = local.gateway_port
  protocol    = "HTTP"
  target_type = "instance"
  vpc_id      = aws_vpc.this.id
  health_check {
    path     = "/healthz"
    port     = "traffic-port"
    protocol = "HTTP"
    matcher  = "200"
  }
}

resource "aws_lb_target_group_attachment" "gateway" {
  target_group_arn = aws_lb_target_group.gateway.arn
  target_id        = aws_instance.gateway.id
  port             = local.gateway_port
}

# 443 only: there is no plain-HTTP listener.
resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.gateway.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.wait_for_certificate ? aws_acm_certificate_validation.gateway[0].certificate_arn : aws_acm_certificate.gateway.arn
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

# --- DNS: the domain and its wildcard point at the load balancer. ---

locals {
  dns_records = {
    apex     = { name = var.domain, type = "A (alias)", data = aws_lb.gateway.dns_name }
    wildcard = { name = "*.${var.domain}", type = "A (alias)", data = aws_lb.gateway.dns_name }
  }
}

resource "aws_route53_record" "gateway" {
  for_each = var.route53_zone_id == null ? {} : local.dns_records
  zone_id  = var.route53_zone_id
  name     = each.value.name
  type     = "A"
  alias {
    name                   = aws_lb.gateway.dns_name
    zone_id                = aws_lb.gateway.zone_id
    evaluate_target_health = true
  }
}
