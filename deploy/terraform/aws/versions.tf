terraform {
  # OpenTofu 1.6+ or Terraform 1.5+ (tested with OpenTofu 1.12).
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Validated and tested against 6.47 (scripts/terraform-tools.sh).
      version = ">= 6.0, < 7.0"
    }
  }
}
