# Cloud SQL for PostgreSQL holding Message DB. The functions log in as their own service
# accounts (IAM database authentication) through the Cloud SQL Python Connector; nothing
# connects with a password but the one-off installer job, as the built-in `postgres` user.
#
# Flags: https://cloud.google.com/sql/docs/postgres/flags (all of those set here apply without a
# restart). The logging flags are the CIS Google Cloud Foundations Benchmark's for PostgreSQL
# (section 6.2), which checkov checks (CKV_GCP_51-54, 109); the ones left off are in
# .checkov.yaml with the reason.

locals {
  cloud_sql_ip_type = var.private_network == null ? "PUBLIC" : "PRIVATE"

  # Connection budget: each function instance keeps a pool of up to db_pool_max_size
  # connections, and up to max_instances instances run at once, so at worst
  #   ingest 10 × 5 + relay 1 × 2 + step 30 × 3 = 142 pooled connections (the defaults),
  # plus ingest's 10 LISTEN sessions and db_connection_headroom (20)
  # = 172 <= max_connections (200).
  # Computed from the variables, so any other scaling is checked the same way (the
  # precondition below); docs/capacity.md sizes it for 100 and 1,000 turns/s.
  # Each ingest instance also holds one LISTEN session (store/signals.py) outside its pool.
  pooled_connections = sum([for f in values(var.functions) : f.max_instances * f.db_pool_max_size])
  listen_connections = try(var.functions.ingest.max_instances, 0)
  connection_budget  = local.pooled_connections + local.listen_connections + var.db_connection_headroom
  budget_terms       = join(" + ", [for name, f in var.functions : "${name} ${f.max_instances} × ${f.db_pool_max_size}"])
}

resource "google_sql_database_instance" "main" {
  project             = var.project_id
  region              = var.region
  name                = "${var.name_prefix}-messagedb"
  database_version    = var.db_version
  deletion_protection = var.db_deletion_protection

  settings {
    edition                     = var.db_edition
    tier                        = var.db_tier
    availability_type           = var.db_availability_type
    disk_size                   = var.db_disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.db_deletion_protection

    backup_configuration {
      enabled                        = true
      start_time                     = var.db_backup_start_time
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.db_log_retention_days

      backup_retention_settings {
        retained_backups = var.db_retained_backups
        retention_unit   = "COUNT"
      }
    }

    # Public IP without authorized networks: only the Cloud SQL connector (and the Cloud Run
    # built-in connection, which uses it) can reach the instance, with client certificates.
    ip_configuration {
      ipv4_enabled    = var.private_network == null
      private_network = var.private_network
      ssl_mode        = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    database_flags {
      name  = "max_connections"
      value = tostring(var.db_max_connections)
    }

    # A wait for a lock longer than deadlock_timeout (1 s) is logged with who holds it: every
    # Message DB write takes an advisory lock on its category (acquire_lock: all thread-*
    # appends share one), so this is where write contention shows.
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }

    # One line per connection and per disconnection (with the IAM user and the session's
    # length). Cheap here: the functions keep pooled connections for an instance's life, so
    # lines come with cold starts and pool turnover, not with requests; and they are the audit
    # trail of who logged in, the installer's `postgres` included.
    database_flags {
      name  = "log_connections"
      value = "on"
    }

    database_flags {
      name  = "log_disconnections"
      value = "on"
    }

    # PostgreSQL's defaults since 15, set so a changed default cannot turn them off unnoticed.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }

    # A failing statement is logged with its text (never its parameters: the functions bind
    # them, so message bodies stay out of the log).
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }

    insights_config {
      query_insights_enabled = true
    }

    # Managed Connection Pooling (ENTERPRISE_PLUS): the connector's connections are routed to
    # Cloud SQL's poolers. https://cloud.google.com/sql/docs/postgres/managed-connection-pooling
    dynamic "connection_pool_config" {
      for_each = var.db_managed_connection_pooling ? [1] : []
      content {
        connection_pooling_enabled = true

        dynamic "flags" {
          for_each = var.db_connection_pool_flags
          content {
            name  = flags.key
            value = flags.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.connection_budget <= var.db_max_connections
      error_message = "Connection budget exceeded: the functions' max_instances × db_pool_max_size (${local.budget_terms}) sum to ${local.pooled_connections}, plus ${local.listen_connections} ingest LISTEN sessions and ${var.db_connection_headroom} headroom is ${local.connection_budget}, over max_connections ${var.db_max_connections}. Lower max_instances or db_pool_max_size, or raise db_max_connections (with a db_tier whose memory carries it: docs/capacity.md)."
    }

    precondition {
      condition     = !var.db_managed_connection_pooling || var.db_edition == "ENTERPRISE_PLUS"
      error_message = "Managed Connection Pooling (db_managed_connection_pooling) needs db_edition ENTERPRISE_PLUS and a db-perf-optimized-* tier."
    }

    precondition {
      condition     = var.private_network == null || var.vpc_connector != null
      error_message = "A private-IP instance (private_network) needs vpc_connector so the functions can reach it."
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_sql_database" "main" {
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  name     = var.db_name
}

# The built-in administrator, used only by the installer job: creating Message DB's role,
# schema and functions needs more than an IAM user is given. Its password is generated for
# one apply (an ephemeral resource) and written, with the same value, to the user and to
# Secret Manager (secrets.tf) through write-only arguments, so it is in neither the plan nor
# the state. Terraform sends it again only when db_admin_password_version changes, which
# rotates both. Write-only arguments need Terraform 1.11:
# https://developer.hashicorp.com/terraform/language/resources/ephemeral/write-only
ephemeral "random_password" "db_admin" {
  length  = 32
  special = false
}

resource "google_sql_user" "admin" {
  project             = var.project_id
  instance            = google_sql_database_instance.main.name
  name                = "postgres"
  password_wo         = ephemeral.random_password.db_admin.result
  password_wo_version = var.db_admin_password_version

  # `postgres` owns Message DB's schema and functions, and Cloud SQL refuses to delete a user
  # that owns objects or holds granted roles, which would fail `terraform destroy`: on destroy
  # the user is left to the instance (deleted with it, or dropped by hand).
  # https://registry.terraform.io/providers/hashicorp/google/6.50.0/docs/resources/sql_user#deletion_policy
  deletion_policy = "ABANDON"
}
