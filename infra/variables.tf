# ---------------------------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project id (6-30 lowercase letters, digits and hyphens), not its name or number."
  }
}

variable "region" {
  description = "Region of the functions, Cloud SQL, the scheduler job and the installer job."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name, so two deployments can share a project."
  type        = string
  default     = "agent"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 lowercase letters, digits or hyphens, starting with a letter (service account ids are at most 30 characters)."
  }
}

# ---------------------------------------------------------------------------------------------
# Artifacts
# ---------------------------------------------------------------------------------------------

variable "build_dir" {
  description = "Folder holding <function>.zip as built by `make package`; null means ../build beside this folder."
  type        = string
  default     = null
}

variable "image" {
  description = "The project's container image (Dockerfile), used by the Message DB installer job, e.g. us-central1-docker.pkg.dev/PROJECT/messagedb-agent/messagedb-agent:TAG."
  type        = string
}

variable "runtime" {
  description = "Cloud Functions runtime; the project requires Python 3.11."
  type        = string
  default     = "python311"

  validation {
    condition     = var.runtime == "python311"
    error_message = "The project requires Python 3.11 (pyproject.toml requires-python), so the runtime is python311."
  }
}

# ---------------------------------------------------------------------------------------------
# Cloud SQL
# ---------------------------------------------------------------------------------------------

variable "db_version" {
  description = "Cloud SQL PostgreSQL version (Message DB needs 13 or newer; 15+ is what is supported here)."
  type        = string
  default     = "POSTGRES_17"

  validation {
    condition     = can(regex("^POSTGRES_(1[5-9]|[2-9][0-9])$", var.db_version))
    error_message = "db_version must be POSTGRES_15 or newer."
  }
}

variable "db_edition" {
  description = "Cloud SQL edition. ENTERPRISE takes the shared and custom tiers; ENTERPRISE_PLUS needs db-perf-optimized-* tiers."
  type        = string
  default     = "ENTERPRISE"

  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.db_edition)
    error_message = "db_edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
}

variable "db_tier" {
  description = "Machine tier of the instance."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_availability_type" {
  description = "ZONAL, or REGIONAL for a standby in a second zone."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.db_availability_type)
    error_message = "db_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_disk_size_gb" {
  description = "Initial disk size; the disk grows automatically."
  type        = number
  default     = 10
}

variable "db_name" {
  description = "Database Message DB is installed into (DB_NAME of the functions)."
  type        = string
  default     = "message_store"
}

variable "db_max_connections" {
  description = "The instance's max_connections flag. Every function's max instances × pool size, summed, plus db_connection_headroom must fit (checked at plan)."
  type        = number
  default     = 200

  validation {
    condition     = var.db_max_connections >= 25 && var.db_max_connections <= 10000
    error_message = "db_max_connections must be between 25 and 10000."
  }
}

variable "db_managed_connection_pooling" {
  description = "Cloud SQL Managed Connection Pooling (ENTERPRISE_PLUS only): the connector's connections go through Cloud SQL's poolers. The functions then stop sending search_path as a startup option (DB_SEARCH_PATH_OPTION=false), which a transaction-mode pooler may refuse; the installer sets it on their roles. See docs/capacity.md."
  type        = bool
  default     = false
}

variable "db_connection_pool_flags" {
  description = "Managed Connection Pooling flags, name => value (e.g. max_pool_size), as Cloud SQL documents them; used only with db_managed_connection_pooling."
  type        = map(string)
  default     = {}
}

variable "db_connection_headroom" {
  description = "Connections kept free of the functions' pools: superuser-reserved slots, the installer job, an operator's psql, Cloud SQL's own maintenance."
  type        = number
  default     = 20

  validation {
    condition     = var.db_connection_headroom >= 5
    error_message = "Keep at least 5 connections of headroom (Cloud SQL reserves some for itself)."
  }
}

variable "db_backup_start_time" {
  description = "UTC start (HH:MM) of the daily backup window."
  type        = string
  default     = "03:00"
}

variable "db_retained_backups" {
  description = "How many daily backups to keep."
  type        = number
  default     = 14
}

variable "db_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery: 1-7 on ENTERPRISE, 1-35 on ENTERPRISE_PLUS."
  type        = number
  default     = 7

  # Cloud SQL's limits: https://cloud.google.com/sql/docs/postgres/backup-recovery/pitr
  # ("1 to 35 for Cloud SQL Enterprise Plus edition, 1 to 7 for Cloud SQL Enterprise edition").
  validation {
    condition     = var.db_log_retention_days >= 1 && var.db_log_retention_days <= (var.db_edition == "ENTERPRISE_PLUS" ? 35 : 7)
    error_message = "db_log_retention_days must be 1-7 on the ENTERPRISE edition (1-35 only on ENTERPRISE_PLUS)."
  }
}

variable "db_admin_password_version" {
  description = "Version of the `postgres` user's generated password (written only, never stored in the state); change it to rotate the password and its secret together."
  type        = number
  default     = 1

  validation {
    condition     = var.db_admin_password_version >= 1 && floor(var.db_admin_password_version) == var.db_admin_password_version
    error_message = "db_admin_password_version must be a whole number, 1 or more."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to destroy the instance (it holds every thread's history)."
  type        = bool
  default     = true
}

variable "private_network" {
  description = "Self link of a VPC with private services access: the instance gets a private IP only. Null keeps a public IP reachable only through the Cloud SQL connector (no authorized networks)."
  type        = string
  default     = null
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector the functions use to reach a private-IP instance (required with private_network)."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Functions: scaling, and with it the connection budget
# ---------------------------------------------------------------------------------------------

variable "functions" {
  description = "Per function: instances, request concurrency, DB pool size (DB_POOL_MAX_SIZE), CPU, memory and timeout. max_instances × db_pool_max_size is the function's share of Cloud SQL connections."
  type = map(object({
    min_instances    = number
    max_instances    = number
    concurrency      = number
    db_pool_max_size = number
    cpu              = string
    memory           = string
    timeout_seconds  = number
  }))
  default = {
    # Holds `?wait=` requests for up to 30 s and live streams for up to stream_max_seconds
    # (Cloud Run's longest request is 3600 s); most of a request is waiting, not querying.
    ingest = {
      min_instances    = 0
      max_instances    = 10
      concurrency      = 40
      db_pool_max_size = 5
      cpu              = "1"
      memory           = "512Mi"
      timeout_seconds  = 3600
    }
    # One call at a time, sweeping for most of each minute (relay_loop_seconds, well under the
    # timeout); two connections: the thread categories are swept two at a time.
    relay = {
      min_instances    = 0
      max_instances    = 1
      concurrency      = 1
      db_pool_max_size = 2
      cpu              = "1"
      memory           = "512Mi"
      timeout_seconds  = 120
    }
    # Mostly waiting on the model; a connection is held only while reading or appending.
    step = {
      min_instances    = 0
      max_instances    = 30
      concurrency      = 8
      db_pool_max_size = 3
      cpu              = "1"
      memory           = "512Mi"
      timeout_seconds  = 300
    }
  }

  validation {
    condition     = toset(keys(var.functions)) == toset(["ingest", "relay", "step"])
    error_message = "functions must have exactly the keys ingest, relay and step (the folders under functions/)."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.db_pool_max_size >= 1 && f.db_pool_max_size <= 100])
    error_message = "db_pool_max_size must be between 1 and 100 (DB_POOL_MAX_SIZE's range)."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.max_instances >= 1 && f.min_instances >= 0 && f.min_instances <= f.max_instances])
    error_message = "Each function needs 0 <= min_instances <= max_instances and max_instances >= 1."
  }

  # Cloud Run's limit on max_instance_request_concurrency:
  # https://cloud.google.com/run/docs/about-concurrency
  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency >= 1 && f.concurrency <= 1000])
    error_message = "concurrency must be 1-1000 (Cloud Run's maximum requests per instance)."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency == 1 || tonumber(f.cpu) >= 1])
    error_message = "Request concurrency above 1 needs at least 1 CPU."
  }

  validation {
    condition     = var.functions["step"].timeout_seconds >= 10 && var.functions["step"].timeout_seconds <= 600
    error_message = "The step timeout must be 10-600 s: it is also the push subscription's ack deadline, which Pub/Sub caps at 600 s."
  }
}

variable "ingest_invokers" {
  description = "IAM members allowed to call ingest. [\"allUsers\"] makes it public (the API checks its own JWTs); for IAP, list IAP's service agent; for a private front end, its service account."
  type        = list(string)
  default     = ["allUsers"]
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------------------------

variable "topic_name" {
  description = "Topic of step notifications (PUBSUB_TOPIC)."
  type        = string
  default     = "agent-steps"
}

variable "dead_letter_topic_name" {
  description = "Topic a notification moves to after its last failed delivery (PUBSUB_DEAD_LETTER_TOPIC)."
  type        = string
  default     = "agent-steps-dead-letter"
}

variable "step_subscription_name" {
  description = "Push subscription delivering notifications to the step function."
  type        = string
  default     = "agent-steps-step"
}

variable "pubsub_max_delivery_attempts" {
  description = "Deliveries of one notification before Pub/Sub dead-letters it (5-100). Not MAX_DELIVERY_ATTEMPTS, which counts reply callbacks."
  type        = number
  default     = 10

  validation {
    condition     = var.pubsub_max_delivery_attempts >= 5 && var.pubsub_max_delivery_attempts <= 100
    error_message = "pubsub_max_delivery_attempts must be between 5 and 100."
  }
}

variable "retry_minimum_backoff" {
  description = "Pub/Sub's first redelivery delay after a failed push."
  type        = string
  default     = "10s"
}

variable "retry_maximum_backoff" {
  description = "Pub/Sub's longest redelivery delay (at most 600s)."
  type        = string
  default     = "300s"
}

variable "dead_letter_retention" {
  description = "How long the dead-letter subscription keeps failed notifications, in seconds (\"604800s\", 7 days): from 10 minutes to 31 days."
  type        = string
  default     = "604800s"

  # A subscription keeps messages from 10 minutes to 31 days:
  # https://cloud.google.com/pubsub/docs/subscription-properties#message_retention_duration
  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention)) && try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 2678400, false)
    error_message = "dead_letter_retention must be whole seconds with an s suffix, from \"600s\" (10 minutes) to \"2678400s\" (31 days)."
  }
}

variable "pubsub_publish_timeout_seconds" {
  description = "PUBSUB_PUBLISH_TIMEOUT_SECONDS: how long a publish waits for Pub/Sub to confirm."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------------------------
# Relay schedule
# ---------------------------------------------------------------------------------------------

variable "relay_schedule" {
  description = "Cron schedule of the relay (Cloud Scheduler's finest is once a minute)."
  type        = string
  default     = "* * * * *"
}

variable "relay_loop_seconds" {
  description = "RELAY_LOOP_SECONDS: how long one relay call keeps sweeping, a pass every relay_tick_seconds; with a call a minute and one instance, the relay is as good as always on. Keep it under the minute and under the relay's timeout_seconds (in `functions`)."
  type        = number
  default     = 50
  validation {
    condition     = var.relay_loop_seconds >= 0 && var.relay_loop_seconds <= 3600
    error_message = "relay_loop_seconds is 0 (one pass per call) to 3600."
  }
  validation {
    condition     = var.relay_loop_seconds + 30 <= var.functions["relay"].timeout_seconds
    error_message = "relay_loop_seconds must leave the relay's timeout_seconds (in `functions`) at least 30 s for its last pass."
  }
}

variable "relay_tick_seconds" {
  description = "RELAY_TICK_SECONDS: pause between two passes of a looping relay call: how late, at most, a lease or a backoff that ran out is taken over."
  type        = number
  default     = 2
  validation {
    condition     = var.relay_tick_seconds > 0 && var.relay_tick_seconds <= 60
    error_message = "relay_tick_seconds is more than 0 and at most 60."
  }
}

variable "relay_budget_seconds" {
  description = "RELAY_BUDGET_SECONDS: how long one relay pass may sweep a backlog before it stops and reports the lag it leaves (the next pass goes on)."
  type        = number
  default     = 40
  validation {
    condition     = var.relay_budget_seconds > 0 && var.relay_budget_seconds <= 3600
    error_message = "relay_budget_seconds is more than 0 and at most 3600."
  }
}

variable "relay_time_zone" {
  description = "Time zone of relay_schedule."
  type        = string
  default     = "Etc/UTC"
}

# ---------------------------------------------------------------------------------------------
# The model (ModelSettings in settings/agent.py)
# ---------------------------------------------------------------------------------------------

variable "vertex_location" {
  description = "GOOGLE_CLOUD_LOCATION: where Vertex AI serves the model: `global` (the current Gemini and Claude models are served there) or a region, for data residency."
  type        = string
  default     = "global"
}

variable "model_name" {
  description = "MODEL_NAME: gemini-* or claude-* on Vertex AI (`messagedb-agent models` lists them; a retired one is refused at start)."
  type        = string
  default     = "gemini-3.8-flash"

  validation {
    condition     = can(regex("^(gemini-|claude-)", var.model_name))
    error_message = "model_name must be a gemini-* or claude-* model; the offline stand-in is for local work."
  }
}

variable "vertex_api_endpoint" {
  description = "VERTEX_API_ENDPOINT: a private Vertex AI endpoint; empty for the public one."
  type        = string
  default     = ""
}

variable "system_prompt" {
  description = "SYSTEM_PROMPT: replaces the built-in system prompt; empty keeps it."
  type        = string
  default     = ""
}

variable "max_iterations" {
  description = "MAX_ITERATIONS: model calls per user turn."
  type        = number
  default     = 10
}

variable "max_llm_attempts" {
  description = "MAX_LLM_ATTEMPTS: attempts of a model call before its failure is final."
  type        = number
  default     = 3
}

variable "max_tool_attempts" {
  description = "MAX_TOOL_ATTEMPTS: attempts of a tool call before its failure is final."
  type        = number
  default     = 2
}

variable "llm_lease_seconds" {
  description = "LLM_LEASE_SECONDS: how long a model-step claim holds before another worker may take it over."
  type        = number
  default     = 120
}

variable "tool_lease_seconds" {
  description = "TOOL_LEASE_SECONDS: how long a tool-step claim holds."
  type        = number
  default     = 60
}

variable "llm_timeout_seconds" {
  description = "LLM_TIMEOUT_SECONDS: one model call's time limit (keep it under the step timeout)."
  type        = number
  default     = 60
}

variable "tool_timeout_seconds" {
  description = "TOOL_TIMEOUT_SECONDS: one tool call's time limit."
  type        = number
  default     = 10
}

variable "step_max_steps" {
  description = "STEP_MAX_STEPS: steps one step-function delivery may run in a row."
  type        = number
  default     = 25
}

variable "view_cache_events" {
  description = "VIEW_CACHE_EVENTS: events of recently driven threads a warm step instance keeps in memory (about 2 KB each)."
  type        = number
  default     = 50000
  validation {
    condition     = var.view_cache_events >= 0
    error_message = "view_cache_events must not be negative."
  }
}

variable "tool_modules" {
  description = "TOOL_MODULES: comma-separated Python modules whose @tool functions join the agent's tools (they must be in each function's source); empty for the built-in tools only."
  type        = string
  default     = ""
}

variable "tools_requiring_approval" {
  description = "TOOLS_REQUIRING_APPROVAL: comma-separated tool names (MCP tools included; * and ? match) whose calls wait for the thread owner's approval; empty: only tools declared with @tool(approval=True)."
  type        = string
  default     = "delete_task"
}

variable "tool_approval_ttl_seconds" {
  description = "TOOL_APPROVAL_TTL_SECONDS: how long a call may wait for approval before it is declined as expired; null waits for ever."
  type        = number
  default     = null

  validation {
    condition     = var.tool_approval_ttl_seconds == null ? true : (var.tool_approval_ttl_seconds > 0 && var.tool_approval_ttl_seconds <= 2592000)
    error_message = "tool_approval_ttl_seconds must be between 1 second and 30 days."
  }
}

variable "context_budget_tokens" {
  description = "CONTEXT_BUDGET_TOKENS: context tokens above which older turns are summarised; null takes half the model's window from the catalogue."
  type        = number
  default     = null
}

variable "tool_result_max_chars" {
  description = "TOOL_RESULT_MAX_CHARS: longest tool result the model is shown (the event keeps all of it)."
  type        = number
  default     = 20000
}

variable "max_output_tokens" {
  description = "MAX_OUTPUT_TOKENS: a model call's output budget."
  type        = number
  default     = 8192
}

variable "max_output_tokens_ceiling" {
  description = "MAX_OUTPUT_TOKENS_CEILING: a reply cut at its budget is asked for again with twice the budget, up to this."
  type        = number
  default     = 32768
}

variable "model_unavailable_retry_seconds" {
  description = "MODEL_UNAVAILABLE_RETRY_SECONDS: how long a thread waits, when the model cannot be used (credentials, permissions, model name, quota), before it tries again."
  type        = number
  default     = 300
}

variable "step_budget_seconds" {
  description = "STEP_BUDGET_SECONDS: after this long a delivery stops chaining and hands on to a new one (keep it well under the step timeout)."
  type        = number
  default     = 60
}

variable "delivery_timeout_seconds" {
  description = "DELIVERY_TIMEOUT_SECONDS: one reply delivery to a callback URL."
  type        = number
  default     = 10
}

variable "callback_max_delivery_attempts" {
  description = "MAX_DELIVERY_ATTEMPTS: attempts of a reply delivery to a callback URL before it is given up."
  type        = number
  default     = 5
}

variable "busy_notice_seconds" {
  description = "BUSY_NOTICE_SECONDS: a chat turn still running this long after the person's message posts \"Working on it…\" (Slack, Google Chat), replaced by the reply; 0: never."
  type        = number
  default     = 5

  validation {
    condition     = var.busy_notice_seconds >= 0 && var.busy_notice_seconds <= 300
    error_message = "busy_notice_seconds must be between 0 and 300."
  }
}

variable "max_message_length" {
  description = "MAX_MESSAGE_LENGTH: characters per user message."
  type        = number
  default     = 5000
}

variable "thread_shards" {
  description = "THREAD_SHARDS: categories new threads are spread over (thread_00 ..), each with its own Message DB write lock and relay cursor. Raise it, never lower it."
  type        = number
  default     = 16
  validation {
    condition     = var.thread_shards >= 1 && var.thread_shards <= 256 && floor(var.thread_shards) == var.thread_shards
    error_message = "thread_shards is a whole number from 1 to 256."
  }
}

variable "db_pool_min_size" {
  description = "DB_POOL_MIN_SIZE: connections each instance opens at start (the maximum is per function, in `functions`)."
  type        = number
  default     = 1
}

variable "db_connect_timeout_seconds" {
  description = "DB_CONNECT_TIMEOUT: how long to wait for a new connection to open."
  type        = number
  default     = 10
}

variable "db_wait_timeout_seconds" {
  description = "DB_WAIT_TIMEOUT: how long a request waits for a pooled connection before the database counts as unavailable (the API answers 503)."
  type        = number
  default     = 2

  validation {
    condition     = var.db_wait_timeout_seconds > 0 && var.db_wait_timeout_seconds <= 120
    error_message = "db_wait_timeout_seconds must be more than 0 and at most 120."
  }
}

# ---------------------------------------------------------------------------------------------
# Logs and traces (ObservabilitySettings in settings/serving.py)
# ---------------------------------------------------------------------------------------------

variable "log_level" {
  description = "LOG_LEVEL: least severe level written."
  type        = string
  default     = "INFO"
}

variable "log_format" {
  description = "LOG_FORMAT: json or console; empty means json on Cloud Run (what Cloud Logging parses)."
  type        = string
  default     = ""

  validation {
    condition     = contains(["", "json", "console"], var.log_format)
    error_message = "log_format must be empty, json or console."
  }
}

variable "log_max_body_chars" {
  description = "LOG_MAX_BODY_CHARS: longer strings in a log line are cut to this many characters."
  type        = number
  default     = 200
}

variable "trace_exporter" {
  description = "TRACE_EXPORTER: gcp sends spans to Cloud Trace; none keeps only the propagated context."
  type        = string
  default     = "gcp"

  validation {
    condition     = contains(["none", "console", "gcp"], var.trace_exporter)
    error_message = "trace_exporter must be none, console or gcp."
  }
}

# ---------------------------------------------------------------------------------------------
# The HTTP API (ApiSettings in settings/serving.py)
# ---------------------------------------------------------------------------------------------

variable "jwt_jwks_url" {
  description = "JWT_JWKS_URL: JWKS endpoint of RS256 tokens (Identity Platform, Auth0, ...); empty for none."
  type        = string
  default     = ""
}

variable "jwt_public_key" {
  description = "JWT_PUBLIC_KEY: PEM public key of RS256 tokens; empty for none."
  type        = string
  default     = ""
}

variable "jwt_audience" {
  description = "JWT_AUDIENCE: required `aud` claim; empty for none."
  type        = string
  default     = ""
}

variable "jwt_issuer" {
  description = "JWT_ISSUER: required `iss` claim; empty for none."
  type        = string
  default     = ""
}

variable "jwt_leeway_seconds" {
  description = "JWT_LEEWAY_SECONDS: clock skew allowed on `exp` and `nbf`."
  type        = number
  default     = 10
}

variable "rate_limit_per_minute" {
  description = "RATE_LIMIT_PER_MINUTE: writes per user per minute; 0 turns the limit off."
  type        = number
  default     = 30
}

variable "rate_limit_burst" {
  description = "RATE_LIMIT_BURST: bucket size; null means the per-minute rate."
  type        = number
  default     = null
}

variable "max_wait_seconds" {
  description = "MAX_WAIT_SECONDS: longest `?wait=` a caller may ask for (keep it under ingest's timeout)."
  type        = number
  default     = 30
}

variable "stream_max_seconds" {
  description = "STREAM_MAX_SECONDS: how long a live stream stays open before its client resumes it; under ingest's timeout_seconds, so the stream ends cleanly rather than being cut."
  type        = number
  default     = 3300

  validation {
    condition     = var.stream_max_seconds > 0 && var.stream_max_seconds + 60 <= var.functions["ingest"].timeout_seconds
    error_message = "stream_max_seconds must be positive and at least 60 s under the ingest function's timeout_seconds."
  }
}

variable "streams_per_user" {
  description = "STREAMS_PER_USER: live streams one user may hold open on one ingest instance."
  type        = number
  default     = 5
}

variable "max_body_bytes" {
  description = "MAX_BODY_BYTES: largest request body."
  type        = number
  default     = 262144
}

variable "idempotency_ttl_seconds" {
  description = "IDEMPOTENCY_TTL_SECONDS: how long the answer to a POST with an Idempotency-Key is replayed (agent.idempotent_responses); after it the key counts as new."
  type        = number
  default     = 86400

  validation {
    condition     = var.idempotency_ttl_seconds >= 1 && var.idempotency_ttl_seconds <= 2592000
    error_message = "idempotency_ttl_seconds must be between 1 and 2592000 (30 days)."
  }
}

# ---------------------------------------------------------------------------------------------
# Generated secrets (secrets.tf): written only, never stored in the state
# ---------------------------------------------------------------------------------------------

variable "jwt_hs256_secret_version" {
  description = "Version of the generated JWT_HS256_SECRET; change it to have Terraform write a new random key (tokens signed with the old one then fail on new instances)."
  type        = number
  default     = 1

  validation {
    condition     = var.jwt_hs256_secret_version >= 1 && floor(var.jwt_hs256_secret_version) == var.jwt_hs256_secret_version
    error_message = "jwt_hs256_secret_version must be a whole number, 1 or more."
  }
}

variable "slack_enabled" {
  description = "Mount the Slack app's secrets (SLACK_SIGNING_SECRET on ingest, SLACK_BOT_TOKEN on ingest and step), which turns the Slack endpoints on. Add both secrets' values first (infra/README.md, \"Connect Slack\")."
  type        = bool
  default     = false
}

variable "telegram_enabled" {
  description = "Mount the Telegram bot's secrets (TELEGRAM_WEBHOOK_SECRET on ingest, TELEGRAM_BOT_TOKEN on ingest and step), which turns the Telegram endpoint on. Add both secrets' values first (infra/README.md, \"Connect Telegram\")."
  type        = bool
  default     = false
}

variable "google_chat_audience" {
  description = "The Google Chat app's Authentication Audience: the project number, or the ingest endpoint URL exactly as configured; empty leaves the Google Chat endpoint off (infra/README.md, \"Connect Google Chat\")."
  type        = string
  default     = ""

  validation {
    condition     = var.google_chat_audience == "" || can(regex("^([0-9]+|https://.+)$", var.google_chat_audience))
    error_message = "google_chat_audience must be a project number or an https:// URL."
  }
}

variable "google_chat_caller" {
  description = "With an endpoint-URL audience, the account Chat's token must name: chat@system.gserviceaccount.com, or for an app built as a Workspace add-on service-<project number>@gcp-sa-gsuiteaddons.iam.gserviceaccount.com."
  type        = string
  default     = "chat@system.gserviceaccount.com"
}

variable "callback_signing_secret_version" {
  description = "Version of the generated CALLBACK_SIGNING_SECRET; change it to have Terraform write a new random key (front ends must then verify with the new one)."
  type        = number
  default     = 1

  validation {
    condition     = var.callback_signing_secret_version >= 1 && floor(var.callback_signing_secret_version) == var.callback_signing_secret_version
    error_message = "callback_signing_secret_version must be a whole number, 1 or more."
  }
}

# ---------------------------------------------------------------------------------------------
# Archive
# ---------------------------------------------------------------------------------------------

variable "archive_operators" {
  description = "IAM members (e.g. user:ops@example.com, serviceAccount:...) who run `messagedb-agent archive`: they may create and read objects in the archive bucket, never delete or replace them. Deleting the archived rows also needs DELETE on message_store.messages, granted in the database."
  type        = list(string)
  default     = []
}
