export { EmbeddedNats, findNatsServer, readPortsFile, type EmbeddedNatsOptions } from "./embedded-nats.js";
export { runServerWatchdog } from "./server-watchdog.js";
export { ClusterNode, clusterNodeConfig, freePort, localClusterNodes, routeSecret, type ClusterConfigOptions, type ClusterNodeSpec, type LocalClusterOptions } from "./nats-cluster.js";
export { Lease, type LeaseOptions } from "./lease.js";
export { exitWhenParentDies, type ParentWatchOptions } from "./parent-watch.js";
export {
  ProcessSupervisor,
  shouldRestart,
  type ChildExit,
  type ChildSpec,
  type ChildState,
  type ChildStatus,
  type RestartPolicy,
  type SupervisorEvents,
  type SupervisorExit,
  type SupervisorOptions,
} from "./process-supervisor.js";
export { backupFleet, readManifest, restoreFleet, BackupManifest, BackupRecord, type BackupOptions, type RestoreOptions, type RestoreReport } from "./backup.js";
export { NightlyBackup, type NightlyBackupOptions } from "./nightly-backup.js";
export { NightlyDistillation, dayEnding, type DistillationSummary, type DistilledDay, type NightlyDistillationOptions } from "./nightly-distillation.js";
export { EventRouter, messageOf, type EventRouterOptions } from "./event-router.js";
export { CronScheduler, cronMessage, type CronSchedulerOptions } from "./cron-scheduler.js";
export { DutyScheduler, type DutySchedulerOptions } from "./duty-scheduler.js";
export { localTargetNames, localTargetsIn, withLocalTargets, type LocalTargets } from "./local-targets.js";
export { deliverToOutbox, taskText, type OutboxDeliveryDeps } from "./outbox-delivery.js";
export { runOutcomeOf, type RunOutcome } from "./run-outcome.js";
export { loadWeeklyReport, nextWeeklyAt, WeeklyReportJob, type WeeklyReportJobOptions, type WeeklyReportSource } from "./weekly-report-job.js";
export { claimOnce, publishNotice } from "./notice.js";
export { evaluateAlerts, type Alert, type AlertInput } from "./alert-rules.js";
export { AlertWatcher, type AlertWatcherOptions } from "./alert-watcher.js";
export { CloseoutSweeper, sweepProposals, sweepTasks, sweepText, type CloseoutSweeperOptions, type SweepLine, type SweepReason } from "./closeout-sweeper.js";
