# The three functions, one module call per folder under functions/. Each gets the settings
# the code reads in Cloud as environment variables (names are the pydantic settings' field
# names: the sections of shared/messagedb_agent/settings/), its secrets, and
# its own service account with only the roles it needs.

locals {
  build_dir = coalesce(var.build_dir, "${path.module}/../build")

  # Settings (settings/): every function validates them at start. CALLBACK_SIGNING_SECRET
  # comes from Secret Manager, to step only: no other function signs reply deliveries.
  engine_env = {
    GOOGLE_CLOUD_PROJECT            = var.project_id
    GOOGLE_CLOUD_LOCATION           = var.vertex_location
    MODEL_NAME                      = var.model_name
    MAX_ITERATIONS                  = tostring(var.max_iterations)
    MAX_LLM_ATTEMPTS                = tostring(var.max_llm_attempts)
    MAX_TOOL_ATTEMPTS               = tostring(var.max_tool_attempts)
    LLM_LEASE_SECONDS               = tostring(var.llm_lease_seconds)
    TOOL_LEASE_SECONDS              = tostring(var.tool_lease_seconds)
    LLM_TIMEOUT_SECONDS             = tostring(var.llm_timeout_seconds)
    TOOL_TIMEOUT_SECONDS            = tostring(var.tool_timeout_seconds)
    STEP_MAX_STEPS                  = tostring(var.step_max_steps)
    STEP_BUDGET_SECONDS             = tostring(var.step_budget_seconds)
    VIEW_CACHE_EVENTS               = tostring(var.view_cache_events)
    TOOL_RESULT_MAX_CHARS           = tostring(var.tool_result_max_chars)
    MAX_OUTPUT_TOKENS               = tostring(var.max_output_tokens)
    MAX_OUTPUT_TOKENS_CEILING       = tostring(var.max_output_tokens_ceiling)
    MODEL_UNAVAILABLE_RETRY_SECONDS = tostring(var.model_unavailable_retry_seconds)
    DELIVERY_TIMEOUT_SECONDS        = tostring(var.delivery_timeout_seconds)
    MAX_DELIVERY_ATTEMPTS           = tostring(var.callback_max_delivery_attempts)
    BUSY_NOTICE_SECONDS             = tostring(var.busy_notice_seconds)
    MAX_MESSAGE_LENGTH              = tostring(var.max_message_length)
    THREAD_SHARDS                   = tostring(var.thread_shards)
    ARCHIVE_URL                     = "gs://${google_storage_bucket.archive.name}/threads"
    DB_POOL_MIN_SIZE                = tostring(var.db_pool_min_size)
    DB_CONNECT_TIMEOUT              = tostring(var.db_connect_timeout_seconds)
    DB_WAIT_TIMEOUT                 = tostring(var.db_wait_timeout_seconds)
    DB_SEARCH_PATH_OPTION           = tostring(!var.db_managed_connection_pooling)
    TOOLS_REQUIRING_APPROVAL        = var.tools_requiring_approval
  }

  # Optional settings are set only when given: an empty value would not mean "unset".
  engine_optional_env = {
    SYSTEM_PROMPT             = var.system_prompt
    VERTEX_API_ENDPOINT       = var.vertex_api_endpoint
    CONTEXT_BUDGET_TOKENS     = var.context_budget_tokens == null ? "" : tostring(var.context_budget_tokens)
    TOOL_MODULES              = var.tool_modules
    TOOL_APPROVAL_TTL_SECONDS = var.tool_approval_ttl_seconds == null ? "" : tostring(var.tool_approval_ttl_seconds)
  }

  # ObservabilitySettings (settings/serving.py); K_SERVICE is set by Cloud Run.
  observability_env = {
    LOG_LEVEL          = var.log_level
    LOG_MAX_BODY_CHARS = tostring(var.log_max_body_chars)
    TRACE_EXPORTER     = var.trace_exporter
  }

  observability_optional_env = {
    LOG_FORMAT = var.log_format
  }

  # CloudSqlSettings (settings/storage.py); DB_IAM_USER is added per function by the module.
  cloud_sql_env = {
    CLOUD_SQL_INSTANCE         = google_sql_database_instance.main.connection_name
    DB_NAME                    = google_sql_database.main.name
    CLOUD_SQL_IP_TYPE          = local.cloud_sql_ip_type
    CLOUD_SQL_REFRESH_STRATEGY = "LAZY"
  }

  # PubSubSettings (settings/serving.py). PUBSUB_SUBSCRIPTION names the step spans'
  # subscription; it is the variable rather than the resource's name, which depends on the
  # step function's URL and so on this environment.
  pubsub_env = {
    PUBSUB_PROJECT                 = var.project_id
    PUBSUB_TOPIC                   = google_pubsub_topic.steps.name
    PUBSUB_DEAD_LETTER_TOPIC       = google_pubsub_topic.dead_letter.name
    PUBSUB_SUBSCRIPTION            = var.step_subscription_name
    PUBSUB_PUBLISH_TIMEOUT_SECONDS = tostring(var.pubsub_publish_timeout_seconds)
  }

  # ApiSettings (settings/serving.py): ingest only. JWT_HS256_SECRET comes from Secret Manager.
  api_env = {
    JWT_LEEWAY_SECONDS      = tostring(var.jwt_leeway_seconds)
    RATE_LIMIT_PER_MINUTE   = tostring(var.rate_limit_per_minute)
    MAX_WAIT_SECONDS        = tostring(var.max_wait_seconds)
    MAX_BODY_BYTES          = tostring(var.max_body_bytes)
    IDEMPOTENCY_TTL_SECONDS = tostring(var.idempotency_ttl_seconds)
    STREAM_MAX_SECONDS      = tostring(var.stream_max_seconds)
    STREAMS_PER_USER        = tostring(var.streams_per_user)
  }

  api_optional_env = {
    JWT_JWKS_URL     = var.jwt_jwks_url
    JWT_PUBLIC_KEY   = var.jwt_public_key
    JWT_AUDIENCE     = var.jwt_audience
    JWT_ISSUER       = var.jwt_issuer
    RATE_LIMIT_BURST = var.rate_limit_burst == null ? "" : tostring(var.rate_limit_burst)
  }

  # GoogleChatSettings (settings/channels.py): ingest verifies Chat's tokens, step replies as
  # its own service account; no secret either way.
  google_chat_optional_env = {
    GOOGLE_CHAT_AUDIENCE = var.google_chat_audience
    GOOGLE_CHAT_CALLER   = var.google_chat_audience == "" ? "" : var.google_chat_caller
  }

  common_env = merge(
    local.engine_env,
    { for key, value in local.google_chat_optional_env : key => value if value != "" },
    { for key, value in local.engine_optional_env : key => value if value != "" },
    local.observability_env,
    { for key, value in local.observability_optional_env : key => value if value != "" },
    local.cloud_sql_env,
    local.pubsub_env,
  )

  ingest_env = merge(
    local.common_env,
    local.api_env,
    { for key, value in local.api_optional_env : key => value if value != "" },
  )
  # RelaySettings (settings/relay.py): relay only. One call keeps sweeping for most of the
  # scheduler's minute, so leases and backoffs are taken over within a tick, not a minute.
  relay_settings_env = {
    RELAY_BUDGET_SECONDS = tostring(var.relay_budget_seconds)
    RELAY_LOOP_SECONDS   = tostring(var.relay_loop_seconds)
    RELAY_TICK_SECONDS   = tostring(var.relay_tick_seconds)
  }

  relay_env = merge(local.common_env, local.relay_settings_env)
  step_env  = local.common_env
}

# Source zips (built by `make package`) are uploaded here; Cloud Build reads them.
resource "google_storage_bucket" "sources" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-function-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Builds the functions' images, instead of the project's default compute account.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-function-build"
  display_name = "Builds the function images (${var.name_prefix})"
}

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/cloudbuild.builds.builder",
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

# Calls the relay on schedule (see scheduler.tf).
resource "google_service_account" "relay_scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-relay-scheduler"
  display_name = "Cloud Scheduler calling the relay (${var.name_prefix})"
}

module "ingest" {
  source = "./modules/function"

  project_id            = var.project_id
  region                = var.region
  name_prefix           = var.name_prefix
  name                  = "ingest"
  entry_point           = "ingest"
  runtime               = var.runtime
  source_bucket         = google_storage_bucket.sources.name
  source_archive        = "${local.build_dir}/ingest.zip"
  build_service_account = google_service_account.build.id
  sql_instance          = google_sql_database_instance.main.name
  scaling               = var.functions["ingest"]
  vpc_connector         = var.vpc_connector
  ingress               = "ALLOW_ALL"
  environment           = local.ingest_env
  secret_env = {
    for key, secret in local.ingest_secrets : key => secret
    if !anytrue([for prefix in local.channel_secret_prefixes : startswith(key, prefix)])
  }
  project_roles = []
  invokers      = { for index, member in var.ingest_invokers : "invoker-${index}" => member }

  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
    google_secret_manager_secret_version.jwt_hs256_secret,
  ]
}

module "relay" {
  source = "./modules/function"

  project_id            = var.project_id
  region                = var.region
  name_prefix           = var.name_prefix
  name                  = "relay"
  entry_point           = "relay"
  runtime               = var.runtime
  source_bucket         = google_storage_bucket.sources.name
  source_archive        = "${local.build_dir}/relay.zip"
  build_service_account = google_service_account.build.id
  sql_instance          = google_sql_database_instance.main.name
  scaling               = var.functions["relay"]
  vpc_connector         = var.vpc_connector
  ingress               = "ALLOW_INTERNAL_ONLY"
  environment           = local.relay_env
  secret_env            = local.relay_secrets
  project_roles         = []
  invokers              = { scheduler = "serviceAccount:${google_service_account.relay_scheduler.email}" }

  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
  ]
}

module "step" {
  source = "./modules/function"

  project_id            = var.project_id
  region                = var.region
  name_prefix           = var.name_prefix
  name                  = "step"
  entry_point           = "step"
  runtime               = var.runtime
  source_bucket         = google_storage_bucket.sources.name
  source_archive        = "${local.build_dir}/step.zip"
  build_service_account = google_service_account.build.id
  sql_instance          = google_sql_database_instance.main.name
  scaling               = var.functions["step"]
  vpc_connector         = var.vpc_connector
  ingress               = "ALLOW_INTERNAL_ONLY"
  environment           = local.step_env
  secret_env = {
    for key, secret in local.step_secrets : key => secret
    if !anytrue([for prefix in local.channel_secret_prefixes : startswith(key, prefix)])
  }
  project_roles = ["roles/aiplatform.user"]
  invokers      = { pubsub_push = "serviceAccount:${google_service_account.step_push.email}" }

  depends_on = [
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
    google_secret_manager_secret_version.callback_signing_secret,
  ]
}
