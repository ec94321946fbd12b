export { DEFAULT_RESTART_MS, McpConnection, restartDelay, type McpConnectionOptions } from "./mcp-connection.js";
export { nameTools, sanitiseToolName } from "./mcp-names.js";
export { configuredRisk, mcpToolRisk, type McpAnnotations, type McpRisk } from "./mcp-risk.js";
export { McpToolSources, type McpToolSourcesOptions } from "./mcp-sources.js";
export { mcpToolDefinition, type McpCaller, type McpCallOptions } from "./mcp-tool.js";
export { mcpAgentSubjects, mcpListingFilters } from "./mcp-grants.js";
