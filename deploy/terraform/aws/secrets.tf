# Secrets of the gateway and the runner. The module creates the secrets, never their values (which would then sit
# in the Terraform state): put a value in each with `aws secretsmanager put-secret-value` (README). The VMs read
# them at boot with their own role, into root-only files.

locals {
  secrets = {
    gateway_admin_token = { name = "${local.p}/gateway-admin-token", readers = ["gateway", "runner"] }
    runner_keys         = { name = "${local.p}/runner-keys", readers = ["runner"] }
    runner_payload_keys = { name = "${local.p}/runner-payload-keys", readers = ["runner"] }
    temporal_api_key    = { name = "${local.p}/temporal-api-key", readers = ["runner"] }
  }
}

resource "aws_secretsmanager_secret" "this" {
  # checkov:skip=CKV_AWS_149:Encrypted with the account's aws/secretsmanager key; a customer key is the customer's choice.
  # checkov:skip=CKV2_AWS_57:These are long-lived keys and tokens that the control plane must be given the same value; rotation is by hand (README).
  for_each                = local.secrets
  name                    = each.value.name
  description             = "Gitspaces: ${replace(each.key, "_", " ")}"
  recovery_window_in_days = var.secret_recovery_window_days
}
