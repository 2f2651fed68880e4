# --- The gateway and the runner VMs: private addresses only, shielded, started by a startup script that installs
# the released package as a systemd service: one instance per role of local.vms. ---

locals {
  gateway_env = {
    GITSPACES_GATEWAY_HOST       = "0.0.0.0"
    GITSPACES_GATEWAY_PORT       = tostring(local.gateway_port)
    GITSPACES_GATEWAY_ADMIN_HOST = "0.0.0.0"
    GITSPACES_GATEWAY_ADMIN_PORT = tostring(local.gateway_admin_port)
    GITSPACES_GATEWAY_DOMAIN     = var.domain
    # The load balancer connects from Google's front ends and appends "<client>,<its own address>" to
    # X-Forwarded-For: both are trusted, so the client is the address before them.
    GITSPACES_GATEWAY_TRUSTED_PROXIES = join(",", concat(local.google_front_end_ranges, [google_compute_global_address.gateway.address]))
    GITSPACES_JWKS_URL                = "${trimsuffix(var.control_plane_url, "/")}/api/v1/.well-known/jwks.json"
    GITSPACES_DATA_DIR                = "/var/lib/gitspaces-gateway"
  }
  runner_env = merge(
    {
      GITSPACES_INFRASTRUCTURE_ID = coalesce(var.infrastructure_id, "unset")
      GITSPACES_INSTALLATION_ID   = var.installation_id
      GITSPACES_GATEWAY_ADMIN_URL = "http://${google_compute_address.gateway.address}:${local.gateway_admin_port}"
      GITSPACES_DATA_DIR          = "/var/lib/gitspaces-runner"
      TEMPORAL_ADDRESS            = var.temporal_address
      TEMPORAL_NAMESPACE          = var.temporal_namespace
      TEMPORAL_TLS                = tostring(var.temporal_tls)
    },
    var.repository_secret_store ? { GITSPACES_SECRET_STORE = "gcp:${var.project}" } : {},
    var.work_order_public_key == null ? {} : { GITSPACES_WORK_ORDER_PUBLIC_KEY = var.work_order_public_key },
  )

  # The package each VM installs: a URL, or an object of the release bucket.
  gateway_package_url = var.gateway_package_url != null ? var.gateway_package_url : var.gateway_package_object != null ? "${local.release_base_url}/${var.gateway_package_object}" : null
  runner_package_url  = var.runner_package_url != null ? var.runner_package_url : var.runner_package_object != null ? "${local.release_base_url}/${var.runner_package_object}" : null

  # What differs between the two VMs; google_compute_instance.this makes one of each.
  vms = {
    gateway = {
      machine_type    = var.gateway_machine_type
      service_account = google_service_account.gateway.email
      # Its reserved internal address, where the runner reaches the admin API. Users come in through the load balancer.
      network_ip     = google_compute_address.gateway.address
      package_url    = local.gateway_package_url
      package_sha256 = var.gateway_package_sha256
      service        = var.gateway_service
      env            = local.gateway_env
      secrets        = { GITSPACES_GATEWAY_ADMIN_TOKEN = google_secret_manager_secret.this["gateway_admin_token"].secret_id }
      start          = true
    }
    runner = {
      machine_type    = var.runner_machine_type
      service_account = google_service_account.runner.email
      # Any address: outbound through Cloud NAT only, nothing inbound.
      network_ip     = null
      package_url    = local.runner_package_url
      package_sha256 = var.runner_package_sha256
      service        = var.runner_service
      env            = local.runner_env
      secrets = {
        GITSPACES_GATEWAY_ADMIN_TOKEN = google_secret_manager_secret.this["gateway_admin_token"].secret_id
        GITSPACES_RUNNER_KEYS         = google_secret_manager_secret.this["runner_keys"].secret_id
        GITSPACES_PAYLOAD_KEYS        = google_secret_manager_secret.this["runner_payload_keys"].secret_id
        TEMPORAL_API_KEY              = google_secret_manager_secret.this["temporal_api_key"].secret_id
      }
      # The runner serves one infrastructure: it starts once the control plane has given it an id.
      start = var.infrastructure_id != null
    }
  }
}

resource "google_compute_address" "gateway" {
  project      = var.project
  name         = "${local.p}-gateway-internal"
  region       = var.region
  subnetwork   = google_compute_subnetwork.services.id
  address_type = "INTERNAL"
}

resource "google_compute_instance" "this" {
  # checkov:skip=CKV_GCP_38:Disks are encrypted at rest with Google-managed keys; customer-supplied keys would have to be handed over on every start, which an unattended VM cannot do.
  for_each                  = local.vms
  project                   = var.project
  name                      = "${local.p}-${each.key}"
  zone                      = local.zone
  machine_type              = each.value.machine_type
  allow_stopping_for_update = true

  boot_disk {
    initialize_params {
      image = var.service_image
      size  = 20
    }
  }

  network_interface {
    subnetwork = google_compute_subnetwork.services.id
    network_ip = each.value.network_ip
    # No access_config: no public address.
  }

  service_account {
    email  = each.value.service_account
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    block-project-ssh-keys = "true"
    enable-oslogin         = "TRUE"
    serial-port-enable     = "false"
  }

  metadata_startup_script = templatefile("${path.module}/templates/startup.sh.tftpl", {
    role           = each.key
    project        = var.project
    package_url    = each.value.package_url == null ? "" : each.value.package_url
    package_sha256 = each.value.package_sha256 == null ? "" : each.value.package_sha256
    service        = each.value.service
    env            = each.value.env
    secrets        = each.value.secrets
    start          = each.value.start
  })

  lifecycle {
    precondition {
      condition     = (each.value.package_url == null) == (each.value.package_sha256 == null)
      error_message = "${each.key}_package_url and ${each.key}_package_sha256 go together."
    }
  }

  # Both VMs fetch their package (and the gateway its JWKS) through Cloud NAT.
  depends_on = [google_compute_router_nat.this]
}

# The VMs were two resources, google_compute_instance.gateway and .runner, before they became one per role.
moved {
  from = google_compute_instance.gateway
  to   = google_compute_instance.this["gateway"]
}

moved {
  from = google_compute_instance.runner
  to   = google_compute_instance.this["runner"]
}
