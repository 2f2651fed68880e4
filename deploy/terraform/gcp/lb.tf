# --- The gateway behind Google's external HTTPS load balancer, with a Certificate Manager certificate for the
# domain and its wildcard (<id>.<domain> host routing), Cloud Armor admitting only var.gateway_allowed_cidrs. ---

resource "google_compute_global_address" "gateway" {
  project = var.project
  name    = "${local.p}-gateway"
}

resource "google_certificate_manager_dns_authorization" "gateway" {
  project    = var.project
  name       = "${local.p}-gateway"
  domain     = var.domain
  depends_on = [google_project_service.apis]
}

resource "google_certificate_manager_certificate" "gateway" {
  project = var.project
  name    = "${local.p}-gateway"
  managed {
    domains            = [var.domain, "*.${var.domain}"]
    dns_authorizations = [google_certificate_manager_dns_authorization.gateway.id]
  }
}

resource "google_certificate_manager_certificate_map" "gateway" {
  project    = var.project
  name       = "${local.p}-gateway"
  depends_on = [google_project_service.apis]
}

resource "google_certificate_manager_certificate_map_entry" "gateway" {
  for_each     = { apex = var.domain, wildcard = "*.${var.domain}" }
  project      = var.project
  name         = "${local.p}-gateway-${each.key}"
  map          = google_certificate_manager_certificate_map.gateway.name
  hostname     = each.value
  certificates = [google_certificate_manager_certificate.gateway.id]
}

resource "google_compute_security_policy" "gateway" {
  # checkov:skip=CKV_GCP_73:No log4j behind it (the gateway and the IDEs are Node.js); a WAF expression would inspect IDE requests, whose bodies are source files, and block legitimate edits.
  project     = var.project
  name        = "${local.p}-gateway"
  description = "Only the configured source ranges reach the gateway"

  dynamic "rule" {
    # Cloud Armor takes at most 10 ranges per rule.
    for_each = chunklist(var.gateway_allowed_cidrs, 10)
    content {
      action   = "allow"
      priority = 1000 + rule.key
      match {
        versioned_expr = "SRC_IPS_V1"
        config {
          src_ip_ranges = rule.value
        }
      }
      description = "allowed source ranges"
    }
  }

  rule {
    action   = "deny(403)"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    description = "everyone else"
  }
}

resource "google_compute_instance_group" "gateway" {
  project   = var.project
  name      = "${local.p}-gateway"
  zone      = local.zone
  instances = [google_compute_instance.this["gateway"].self_link]
  named_port {
    name = "gateway"
    port = local.gateway_port
  }
}

resource "google_compute_health_check" "gateway" {
  project = var.project
  name    = "${local.p}-gateway"
  http_health_check {
    port         = local.gateway_port
    request_path = "/healthz"
  }
  log_config {
    enable = true
  }
}

resource "google_compute_backend_service" "gateway" {
  project               = var.project
  name                  = "${local.p}-gateway"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTP"
  port_name             = "gateway"
  # Also the longest a WebSocket (an IDE session) stays open before the client reconnects.
  timeout_sec     = 3600
  health_checks   = [google_compute_health_check.gateway.id]
  security_policy = google_compute_security_policy.gateway.id
  backend {
    group           = google_compute_instance_group.gateway.self_link
    balancing_mode  = "UTILIZATION"
    capacity_scaler = 1
  }
  log_config {
    enable      = true
    sample_rate = 1
  }
}

resource "google_compute_url_map" "gateway" {
  project         = var.project
  name            = "${local.p}-gateway"
  default_service = google_compute_backend_service.gateway.id
}

resource "google_compute_ssl_policy" "gateway" {
  project         = var.project
  name            = "${local.p}-gateway"
  profile         = "RESTRICTED"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "gateway" {
  project         = var.project
  name            = "${local.p}-gateway"
  url_map         = google_compute_url_map.gateway.id
  certificate_map = "//certificatemanager.googleapis.com/${google_certificate_manager_certificate_map.gateway.id}"
  ssl_policy      = google_compute_ssl_policy.gateway.id
}

# 443 only: there is no plain-HTTP listener.
resource "google_compute_global_forwarding_rule" "gateway" {
  project               = var.project
  name                  = "${local.p}-gateway"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "443"
  ip_address            = google_compute_global_address.gateway.id
  target                = google_compute_target_https_proxy.gateway.id
}

# --- DNS: the domain and its wildcard point at the load balancer; the CNAME proves domain ownership to
# Certificate Manager. ---

locals {
  dns_records = {
    apex     = { name = "${var.domain}.", type = "A", data = google_compute_global_address.gateway.address }
    wildcard = { name = "*.${var.domain}.", type = "A", data = google_compute_global_address.gateway.address }
    certificate = {
      name = google_certificate_manager_dns_authorization.gateway.dns_resource_record[0].name
      type = google_certificate_manager_dns_authorization.gateway.dns_resource_record[0].type
      data = google_certificate_manager_dns_authorization.gateway.dns_resource_record[0].data
    }
  }
}

resource "google_dns_record_set" "gateway" {
  for_each     = var.dns_managed_zone == null ? {} : local.dns_records
  project      = var.project
  managed_zone = var.dns_managed_zone
  name         = each.value.name
  type         = each.value.type
  ttl          = 300
  rrdatas      = [each.value.data]
}
