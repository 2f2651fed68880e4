# --- The release bucket: the packages of `npm run package` (the runner's and the gateway's .deb, the agent package,
# optionally a copy of the Node.js tarball) for the VMs of this module and the gitspace machines. ---
#
# Private: every public access block on, ACLs off, TLS only. Gitspace machines have no AWS credentials, so they read it
# without any: through the VPC's S3 gateway endpoint, the only way in that the bucket policy opens to unsigned
# requests (s3:GetObject, objects only, no listing). Nothing outside the VPC can read it that way, and AWS does not
# count a policy scoped to a VPC endpoint as public, so BlockPublicPolicy stays on. The operator uploads with their
# own credentials (output release_bucket).

locals {
  release_bucket   = coalesce(var.release_bucket_name, "${local.p}-releases-${data.aws_caller_identity.current.account_id}")
  release_base_url = "https://${aws_s3_bucket.releases.bucket}.s3.${var.region}.amazonaws.com"
  # config.agent: the operator's settings, with the agent package of the bucket when agent_package names one.
  agent_config = merge(
    var.agent,
    var.agent_package == null ? {} : {
      packageUrl    = "${local.release_base_url}/${var.agent_package.object}"
      packageSha256 = var.agent_package.sha256
    },
  )
}

resource "aws_s3_bucket" "releases" {
  # checkov:skip=CKV_AWS_18:Access logging needs a log bucket of the customer's choice; reads are from the VPC endpoint only.
  # checkov:skip=CKV_AWS_144:Release packages are rebuilt from source and pinned by checksum; no cross-region copy is needed.
  # checkov:skip=CKV2_AWS_62:No event notifications: nothing reacts to uploads.
  # checkov:skip=CKV_AWS_145:SSE-S3, not KMS: machines read without credentials, and a KMS key would need them to decrypt.
  bucket        = local.release_bucket
  force_destroy = var.release_bucket_force_destroy
  tags          = { Name = local.release_bucket }
}

resource "aws_s3_bucket_public_access_block" "releases" {
  bucket                  = aws_s3_bucket.releases.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "releases" {
  bucket = aws_s3_bucket.releases.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "releases" {
  bucket = aws_s3_bucket.releases.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "releases" {
  bucket = aws_s3_bucket.releases.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "releases" {
  bucket = aws_s3_bucket.releases.id
  rule {
    id     = "old-versions-and-aborted-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.releases]
}

# S3 traffic of the private subnets (machines, gateway, runner) goes through this endpoint instead of NAT.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = { Name = "${local.p}-s3" }
}

resource "aws_s3_bucket_policy" "releases" {
  # checkov:skip=CKV_AWS_70:Principal "*" may only GetObject, and only through this VPC's S3 endpoint (aws:SourceVpce): the machines have no credentials to name.
  bucket = aws_s3_bucket.releases.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ReadObjectsFromTheVpcEndpointOnly"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.releases.arn}/*"
        Condition = { StringEquals = { "aws:SourceVpce" = aws_vpc_endpoint.s3.id } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.releases.arn, "${aws_s3_bucket.releases.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.releases]
}
