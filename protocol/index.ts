export {
  A2A_VERSION,
  NATS_BINDING_URI,
  AgentCard,
  AgentSkill,
  Artifact,
  DataPart,
  Message,
  Part,
  RawPart,
  Role,
  Task,
  TaskArtifactUpdateEvent,
  TaskEvent,
  TaskState,
  TaskStatus,
  TaskStatusUpdateEvent,
  TextPart,
  UrlPart,
  isTerminal,
} from "./a2a.js";
export { Finding, FleetEvent, OpenProblem, Severity, TRIGGERS, TaskWork, Trigger, taskWorkOf, triggerOf } from "./autonomy.js";
export { ModelStepServed, PipelineRunRecord, PipelineStepRecord } from "./pipeline-run.js";
export { nowOf, systemClock, type Clock } from "./clock.js";
export { CONTENT_TYPES, codecForContentType, decode, decodeUnknown, encode, type CodecName, type Decoded, type DecodeOptions } from "./codec.js";
export { connectNats, connectServing, drainConnections, inboxPrefixFor, isPermissionViolation, servingSeedFileOf, type ConnectOptions } from "./connect.js";
export { closeConnectionsWhenServerAway, isServerAway, type AwayWatch, isServerAwayError, retryWhileServerAway } from "./server-away.js";
export { deadLetter } from "./dead-letter.js";
export { electionSafeJetStream, electionSafeKv, isElectionError, retryThroughElection, type ElectionRetryOptions } from "./election-retry.js";
export { outboxMessageId } from "./outbox-message-id.js";
export { ERROR_CATALOGUE, ErrorPayload, FleetError, FleetErrorCode, formatPath, isBadInput, issuesOf, type FieldIssue } from "./errors.js";
export {
  CancelTaskRequest,
  GetTaskRequest,
  ListTasksRequest,
  ListTasksResult,
  OPERATION_NAMES,
  OPERATIONS,
  SendMessageRequest,
  replySchema,
  type OperationName,
} from "./operations.js";
export { AgentRecord, CronRunRecord, DutyOutcome, DutyRunRecord, dutyRunKey, EMAIL_CHANNEL, QUIET_HOURS_KEY, QuietHoursRecord, MemorySearchRequest, MemorySearchResult, OutboxRecord, SessionLogEntry, TaskAssignment, isAlive } from "./records.js";
export {
  ensureFleetResources,
  ensureOutboxConsumer,
  LEASE_TTL_MS,
  ensureTaskConsumer,
  openBuckets,
  openFleetResources,
  type FleetResources,
  type ResourceOptions,
  type TaskConsumerOptions,
} from "./resources.js";
export {
  BudgetState,
  BudgetView,
  ChatMessage,
  CompleteReply,
  CompleteRequest,
  EmbedReply,
  EmbedRequest,
  ModelToolCall,
  RouteDecision,
  RouteReason,
  RouteRequest,
  RouteStep,
  TIER_NAMES,
  TierName,
  TokenUsage,
  UsageQuery,
  UsageRecord,
  UsageReply,
  TeachReply,
  TeachRequest,
} from "./router.js";
export {
  ApprovalDecision,
  ApprovalRequest,
  AuditAnchor,
  AuditRecord,
  DelegationReport,
  PROPOSAL_STATES,
  ProposalActionRequest,
  ProposalEvent,
  ProposalRecord,
  ProposalState,
  ProposalSubmission,
  ProposalTransition,
  RefusalRecorded,
  RefusalReport,
  RiskLevel,
  RuleResult,
  SentinelVerdict,
  ToolCallRequest,
  ToolCallResult,
  ToolDescription,
  ToolName,
  isFinalProposalState,
  needsProposal,
} from "./governance.js";
export { readAfter, readStream, readSubject, type ReadAfter, type StoredMessage } from "./stream-reader.js";
export { HeldTask, Hold, HoldReason, TaskHeldMetadata, heldOf } from "./holds.js";
export { EventInput, eventFromStored, eventOf, storedCodec } from "./event-input.js";
export { mcpListingKeys, toolListingKey, ToolListing } from "./tool-listing.js";
export { estimateInputTokens, estimateTextTokens } from "./tokens.js";
export { partsText, TITLE_MAX_CHARS, textOf, titleOf, titleOfText } from "./task-text.js";
export { CALLERS, FleetNames, HEADERS, assertToken, type BucketKey, type ControlOperation, type GovernanceOperation, type RouterOperation, type StreamKey } from "./subjects.js";
export { negotiate, replyError, replyResult, requestOperation, requestTyped, sendToInbox, wireHeaders, type RequestOptions } from "./wire.js";
export { isPlainObject, JsonInput, JsonObject, JsonValue, plainObject, TaskId } from "./wire-types.js";
export { REDACTED, SecretScrubber, secretEnvNames, secrets } from "./secret-scrubber.js";
export { bodilessEndpoint, endpoint, FleetService, type Endpoint, type EndpointSpec, type FleetServiceOptions, type ServiceCall } from "./service.js";
export { discoverServices, MicroStats, registerDiscovery, type DiscoverableService } from "./micro-discovery.js";
export { activeTraceparent, contextOfTraceparent, formatTraceparent, parseTraceparent, withTraceparent } from "./trace-context.js";
export { errorTypeOf, failSpan, GEN_AI, inGenAiSpan, type GenAiOperation, type GenAiSpanSpec } from "./gen-ai-spans.js";
