# --- Identities ---------------------------------------------------------------------------------------------
# runner:  the one identity with cloud permissions: exactly runner-permissions.json, nothing more.
# gateway: reads its own secret; nothing else.
# machine: what gitspace machines run as (config.serviceAccount): no roles at all.

resource "google_service_account" "runner" {
  project      = var.project
  account_id   = "${local.p}-runner"
  display_name = "Gitspaces runner (creates gitspace machines)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "gateway" {
  project      = var.project
  account_id   = "${local.p}-gateway"
  display_name = "Gitspaces CDE gateway"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "machine" {
  project      = var.project
  account_id   = "${local.p}-machine"
  display_name = "Gitspace machines (no permissions)"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "runner" {
  project     = var.project
  role_id     = "${replace(local.p, "-", "_")}_runner"
  title       = "Gitspaces runner"
  description = local.permissions.grants.project.description
  permissions = local.permissions.grants.project.permissions
}

resource "google_project_iam_member" "runner" {
  project = var.project
  role    = google_project_iam_custom_role.runner.id
  member  = google_service_account.runner.member
}

# Act as the machines' service account (and no other): needed to create instances that run as it.
resource "google_project_iam_custom_role" "runner_act_as_machine" {
  project     = var.project
  role_id     = "${replace(local.p, "-", "_")}_runner_act_as"
  title       = "Gitspaces runner: act as the machine service account"
  description = local.permissions.grants.machineServiceAccount.description
  permissions = local.permissions.grants.machineServiceAccount.permissions
}

resource "google_service_account_iam_member" "runner_act_as_machine" {
  service_account_id = google_service_account.machine.name
  role               = google_project_iam_custom_role.runner_act_as_machine.id
  member             = google_service_account.runner.member
}

# Repository tokens the runner resolves by reference (activities/secret-store.ts): only secrets whose name starts
# with gitspaces-shared- or gitspaces-user-.
resource "google_project_iam_custom_role" "runner_repository_secrets" {
  count       = var.repository_secret_store ? 1 : 0
  project     = var.project
  role_id     = "${replace(local.p, "-", "_")}_runner_repo_secrets"
  title       = "Gitspaces runner: repository token secrets"
  description = local.permissions.grants.repositorySecrets.description
  permissions = local.permissions.grants.repositorySecrets.permissions
}

resource "google_project_iam_member" "runner_repository_secrets" {
  count   = var.repository_secret_store ? 1 : 0
  project = var.project
  role    = google_project_iam_custom_role.runner_repository_secrets[0].id
  member  = google_service_account.runner.member
  condition {
    title       = "gitspaces-repository-tokens"
    description = "Only repository token secrets"
    expression = join(" || ", [
      for prefix in ["gitspaces-shared-", "gitspaces-user-"] :
      "resource.name.startsWith(\"projects/${data.google_project.this.number}/secrets/${prefix}\")"
    ])
  }
}
