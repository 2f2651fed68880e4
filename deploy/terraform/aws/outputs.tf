locals {
  machine_ami_lookup = { for key, value in var.machine_ami_lookup : key => value if value != null }

  # Exactly the `config` of POST /api/v1/infrastructures for provider "aws" (providers/aws/config.ts). No
  # instanceProfile: gitspace machines get no AWS credentials at all.
  infrastructure_config = merge(
    {
      region           = var.region
      subnetId         = aws_subnet.machines.id
      securityGroupIds = [aws_security_group.machines.id]
      volumeType       = var.machine_volume_type
      agent            = local.agent_config
    },
    var.machine_ami != null ? { ami = var.machine_ami } : {},
    var.machine_ami == null ? { amiLookup = local.machine_ami_lookup } : {},
    var.repository_networks == null ? {} : { repositoryNetworks = var.repository_networks },
  )
}

output "infrastructure_config" {
  description = "The `config` of POST /api/v1/infrastructures with provider \"aws\": `tofu output -json infrastructure_config`."
  value       = local.infrastructure_config
}

output "infrastructure_request" {
  description = "The whole body of POST /api/v1/infrastructures: `tofu output -json infrastructure_request | curl --json @- …`."
  value = {
    name       = var.name_prefix
    provider   = "aws"
    config     = local.infrastructure_config
    gatewayUrl = "https://${var.domain}"
  }
}

output "gateway_url" {
  description = "Public URL of the gateway (the infrastructure's gatewayUrl)."
  value       = "https://${var.domain}"
}

output "load_balancer_dns_name" {
  description = "DNS name of the gateway's load balancer: what <domain> and *.<domain> alias."
  value       = aws_lb.gateway.dns_name
}

output "dns_records" {
  description = "DNS records the gateway needs (created in route53_zone_id when it is set; create them yourself otherwise), plus the certificate's validation record."
  value = merge(local.dns_records, {
    for domain, option in local.certificate_validation : "certificate-${domain}" => {
      name = option.resource_record_name, type = option.resource_record_type, data = option.resource_record_value
    }
  })
}

output "release_bucket" {
  description = "The release bucket: upload the packages of `npm run package` (aws s3 cp dist/packages/FILE s3://NAME/KEY), then set agent_package, runner_package_object and gateway_package_object."
  value = {
    name     = aws_s3_bucket.releases.bucket
    base_url = local.release_base_url
  }
}

output "runner_role_arn" {
  description = "IAM role of the runner."
  value       = aws_iam_role.runner.arn
}

output "secrets" {
  description = "Secrets Manager secrets to give a value (aws secretsmanager put-secret-value --secret-id NAME --secret-string …)."
  value       = { for key, secret in aws_secretsmanager_secret.this : key => secret.name }
}

output "runner_instance_id" {
  description = "The runner VM (its startup log: /var/log/gitspaces-runner-startup.log)."
  value       = aws_instance.runner.id
}

output "gateway_instance_id" {
  description = "The gateway VM."
  value       = aws_instance.gateway.id
}
