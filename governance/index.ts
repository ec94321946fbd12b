// the tool catalogue, the tool host and the audit trail
export { AuditChain, readAuditTip, type AuditAppended, type AuditChainOptions, type AuditEntry, type AuditTip } from "./audit-chain.js";
export { ANCHOR_INTERVAL_MS, AuditAnchorer, type AnchorTick, type AuditAnchorerOptions } from "./audit-anchorer.js";
export { readAuditAnchors, type AnchorProblem, type AnchorSet } from "./audit-anchors.js";
export { recordHash } from "./audit-hash.js";
export {
  anchorSigningBytes,
  IDENTITIES_FILE,
  recordSigningBytes,
  signatureValid,
  signBytes,
  signerFromCredsFile,
  signerFromSeed,
  trustedSignersIn,
  type AuditSigner,
  type TrustedSigners,
} from "./audit-signing.js";
export { readAuditMessages, readAuditRecords, verifyAuditChain, type AuditProblem, type AuditVerification, type StoredAudit, type VerifyOptions } from "./audit-trail.js";
export { checkAllowed, checkProposal, type ProposedCall } from "./call-checks.js";
export { defineTool, type OutgoingMessageFields, type ToolContext, type ToolDefinition } from "./tool.js";
export { ToolCatalogue } from "./tool-catalogue.js";
export { ToolDirectory } from "./tool-directory.js";
export { globMatches, serverOf, toolAllowed } from "./tool-globs.js";
export { ToolListings } from "./tool-listings.js";
export {
  configuredRisk,
  DEFAULT_RESTART_MS,
  mcpAgentSubjects,
  mcpListingFilters,
  mcpToolRisk,
  McpToolSources,
  nameTools,
  restartDelay,
  sanitiseToolName,
  type McpAnnotations,
  type McpRisk,
  type McpToolSourcesOptions,
} from "./mcp/index.js";
export { askWithRetries, PeerClient, peerArtifacts, peerBackoffMs, peerClients, peerCostUsd, peerToolOutput, peerToolRisks, peerTools, peerToolTimeoutMs, ungrantedPeerSkill, PeerToolInput, PeerToolOutput, type PeerAnswer, type PeerClients, type PeerRequest, type PeerRetryOptions } from "./peers/index.js";
export { TOOLS_QUEUE, ToolHost, type ToolHostOptions } from "./tool-host.js";
export { ToolRunRecord, ToolRuns, toolRunKey, type ToolRunClaim, type ToolRunOutcome, type ToolRunScope } from "./tool-runs.js";
export { BUSINESS_TOOL_RISKS, DEMO_SITE_CONTROL, judgeHeaders, type HeaderVerdict, compareVersions, parseRange, parseVersion, referenceToolRisks, referenceTools, satisfies, ToolState, type ReferenceToolDeps } from "./tools/index.js";
export { checkToolNames, fleetToolRisks, fleetTools, loadFleetTools, NO_TOOL_MODULES, toolSource, type FleetToolSources } from "./fleet-tools.js";
export { loadToolModules, type LoadedToolModule } from "./tool-modules.js";
export { defineTool as defineModuleTool, type ModuleTool } from "./module-tool.js";
export { AgentTools, type AgentToolsOptions } from "./agent-tools.js";
export { AUTH_FILE, authorizationConfig, seedFileName, writeFleetCredentials, type FleetCredentials, type IdentityUser } from "./credentials.js";
export { approvalChannels, directTools, fleetDurables, fleetIdentities, fleetPermissions, noticeChannel, outboxChannels, servingIdentity, type Identity, type PermissionOptions, type Permissions, type ServingIdentity, type SubjectRules } from "./permissions.js";
// proposals, Sentinel and the governance process
export { ApprovalNotices, summarise } from "./approval-notices.js";
export { approversOf, decisionRefusal } from "./decision-check.js";
export { GovernanceService, type GovernanceServiceOptions } from "./governance-service.js";
export { ProposalIndex, type ProposalSummary } from "./proposal-index.js";
export { DEFAULT_POLICY, proposalMachine, rollbackRefusal, type NoticeKind, type ProposalEmitted, type ProposalEvent, type ProposalPolicy } from "./proposal-machine.js";
export { newProposalRecord, stepProposal, type ProposalStep } from "./proposal-step.js";
export { ProposalStore, type StoredProposal } from "./proposal-store.js";
export { evaluateProposal, RULE_NAMES, actionKey, type OtherProposal, type RuleName, type SentinelInput } from "./sentinel.js";
export { callTool } from "./tool-caller.js";
export { checkGovernanceConfig, policyOf, startGovernance, type StartGovernanceOptions } from "./start-governance.js";
export { proposalIdFor } from "./agent-tools.js";
