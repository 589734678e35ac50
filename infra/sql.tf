# Cloud SQL for PostgreSQL holding Message DB. The functions log in as their own service
# accounts (IAM database authentication) through the Cloud SQL Python Connector; nothing
# connects with a password but the one-off installer job, as the built-in `postgres` user.

locals {
  cloud_sql_ip_type = var.private_network == null ? "PUBLIC" : "PRIVATE"

  # Connection budget: each function instance keeps a pool of up to db_pool_max_size
  # connections, and up to max_instances instances run at once, so at worst
  #   ingest 10 × 5 + relay 1 × 2 + step 30 × 3 = 142 pooled connections (the defaults),
  # plus db_connection_headroom (20) = 162 <= max_connections (200).
  pooled_connections = sum([for f in values(var.functions) : f.max_instances * f.db_pool_max_size])
  connection_budget  = local.pooled_connections + var.db_connection_headroom
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

    insights_config {
      query_insights_enabled = true
    }
  }

  lifecycle {
    precondition {
      condition     = local.connection_budget <= var.db_max_connections
      error_message = "Connection budget exceeded: the functions' max_instances × db_pool_max_size sum to ${local.pooled_connections}, plus ${var.db_connection_headroom} headroom is ${local.connection_budget}, over max_connections ${var.db_max_connections}. Lower max_instances or db_pool_max_size, or raise db_max_connections."
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
# schema and functions needs more than an IAM user is given. Its password is kept in
# Secret Manager (and, being generated here, in the Terraform state: keep the state bucket private).
resource "random_password" "db_admin" {
  length  = 32
  special = false
}

resource "google_sql_user" "admin" {
  project  = var.project_id
  instance = google_sql_database_instance.main.name
  name     = "postgres"
  password = random_password.db_admin.result
}
