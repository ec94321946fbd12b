export { Dashboard, type DashboardOptions } from "./dashboard-server.js";
export { DashboardAuth, SESSION_COOKIE } from "./dashboard-auth.js";
export { UsageDays, type CostSeries, type DaySpend } from "./cost-series.js";
export { FleetMetrics } from "./fleet-metrics.js";
export { FleetReader, type AgentRow, type DeadLetterRow, type FleetBuckets, type TaskPage, type TaskRow } from "./fleet-reader.js";
export { TaskIndex, type TaskEntry, type TaskIndexPage, type TaskQuery } from "./task-index.js";
export { ProposalEntries, type ProposalEntry } from "./proposal-entries.js";
export { proposalsPage, tasksPage } from "./work-pages.js";
