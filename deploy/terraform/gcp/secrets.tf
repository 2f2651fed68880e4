# Secrets of the gateway and the runner. The module creates the secrets, never their values (which would then sit
# in the Terraform state): add a version to each with `gcloud secrets versions add NAME --data-file=-`
# (README). The VMs read them at boot with their own service account, into root-only files.

locals {
  secrets = {
    gateway_admin_token = { name = "${local.p}-gateway-admin-token", readers = ["gateway", "runner"] }
    runner_keys         = { name = "${local.p}-runner-keys", readers = ["runner"] }
    runner_payload_keys = { name = "${local.p}-runner-payload-keys", readers = ["runner"] }
    temporal_api_key    = { name = "${local.p}-temporal-api-key", readers = ["runner"] }
  }
  secret_readers = {
    gateway = google_service_account.gateway.member
    runner  = google_service_account.runner.member
  }
  secret_grants = merge([
    for key, secret in local.secrets : {
      for reader in secret.readers : "${key}/${reader}" => { secret = key, member = local.secret_readers[reader] }
    }
  ]...)
}

resource "google_secret_manager_secret" "this" {
  for_each  = local.secrets
  project   = var.project
  secret_id = each.value.name
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "readers" {
  for_each  = local.secret_grants
  project   = var.project
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}
