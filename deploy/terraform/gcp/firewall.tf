# Firewall rules select VMs by service account, not by network tag: a tag can be set by anyone who may edit an
# instance, a service account only by whoever may act as it.

# The agent port of the gitspace machines: from the gateway (the IDE traffic) and the runner (health, workspace).
resource "google_compute_firewall" "agent_from_gateway_and_runner" {
  project                 = var.project
  name                    = "${local.p}-agent-from-gateway-and-runner"
  network                 = google_compute_network.this.id
  direction               = "INGRESS"
  priority                = 1000
  source_service_accounts = [google_service_account.gateway.email, google_service_account.runner.email]
  target_service_accounts = [google_service_account.machine.email]
  allow {
    protocol = "tcp"
    ports    = [tostring(local.agent_port)]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The gateway's public listener: only from the load balancer's front ends (proxied requests and health checks).
resource "google_compute_firewall" "gateway_from_load_balancer" {
  project                 = var.project
  name                    = "${local.p}-gateway-from-load-balancer"
  network                 = google_compute_network.this.id
  direction               = "INGRESS"
  priority                = 1000
  source_ranges           = local.google_front_end_ranges
  target_service_accounts = [google_service_account.gateway.email]
  allow {
    protocol = "tcp"
    ports    = [tostring(local.gateway_port)]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The gateway's admin listener (route registration): only from the runner.
resource "google_compute_firewall" "gateway_admin_from_runner" {
  project                 = var.project
  name                    = "${local.p}-gateway-admin-from-runner"
  network                 = google_compute_network.this.id
  direction               = "INGRESS"
  priority                = 1000
  source_service_accounts = [google_service_account.runner.email]
  target_service_accounts = [google_service_account.gateway.email]
  allow {
    protocol = "tcp"
    ports    = [tostring(local.gateway_admin_port)]
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Nothing else reaches the machines, the gateway or the runner: an explicit deny right after the allows (GCP would
# deny by default too, but only at the lowest priority, so any allow rule added to the network later would win).
resource "google_compute_firewall" "deny_other_ingress" {
  for_each = {
    machines = google_service_account.machine.email
    gateway  = google_service_account.gateway.email
    runner   = google_service_account.runner.email
  }
  project                 = var.project
  name                    = "${local.p}-deny-ingress-${each.key}"
  network                 = google_compute_network.this.id
  direction               = "INGRESS"
  priority                = 1100
  source_ranges           = ["0.0.0.0/0"]
  target_service_accounts = [each.value]
  deny {
    protocol = "all"
  }
  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
