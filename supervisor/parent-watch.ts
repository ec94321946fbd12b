import { fstatSync, readFileSync } from "node:fs";

export interface ParentWatchOptions {
  /** How often to check whether the parent we started under is still our parent. */
  pollMs?: number;
}

/**
 * Called by a child process so that it does not outlive its supervisor, even when the supervisor is SIGKILLed and gets
 * no chance to stop it. Two independent signals, whichever comes first, call `onExit` exactly once:
 *
 * - stdin reaches end: the supervisor gives every child a pipe on stdin that it never writes to; the kernel closes the
 *   write end when the supervisor dies, however it dies. Only watched when stdin is a pipe or socket, because a TTY
 *   never ends and /dev/null or a regular file ends at once, which would make the child exit immediately.
 * - the parent pid changes: when the parent dies the child is re-parented (to init or a subreaper). This covers
 *   children started without the stdin pipe. Node 20 reads process.ppid once at boot, so it cannot be polled; the
 *   live value comes from /proc, or where there is no procfs, from whether the original parent pid still exists.
 *
 * Call it first thing at start-up: a parent that died before the call goes unnoticed by the pid check (the stdin
 * pipe still reports it). Neither watcher keeps the event loop alive. Returns a function that stops watching.
 */
export function exitWhenParentDies(onExit: () => void, options: ParentWatchOptions = {}): () => void {
  let fired = false;
  const startPpid = livePpid() ?? process.ppid;
  // Touch process.stdin only when watching it: the getter opens fd 0 as a stream.
  const stdin = stdinIsPipe() ? process.stdin : undefined;

  const fire = (): void => {
    if (fired) return;
    fired = true;
    dispose();
    onExit();
  };

  const timer = setInterval(() => {
    if (parentGone(startPpid)) fire();
  }, options.pollMs ?? 1000);
  // A child with nothing else to do should still be free to exit on its own.
  timer.unref();

  if (stdin) {
    stdin.on("end", fire);
    stdin.on("close", fire);
    // The bytes are never meant for us; reading is only how we learn that the write end closed.
    stdin.on("data", ignore);
    stdin.on("error", fire);
    stdin.resume();
    stdin.unref();
  }

  function dispose(): void {
    clearInterval(timer);
    if (!stdin) return;
    stdin.off("end", fire);
    stdin.off("close", fire);
    stdin.off("data", ignore);
    stdin.off("error", fire);
  }

  return () => {
    fired = true;
    dispose();
  };
}

function stdinIsPipe(): boolean {
  try {
    const stat = fstatSync(0);
    // Node's child_process gives "pipe" stdio as a Unix socket pair; a shell pipeline gives a FIFO.
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false; // fd 0 closed
  }
}

function parentGone(startPpid: number): boolean {
  const ppid = livePpid();
  if (ppid !== undefined) return ppid !== startPpid;
  try {
    process.kill(startPpid, 0);
    return false;
  } catch (err) {
    return err instanceof Error && "code" in err && err.code === "ESRCH";
  }
}

/** The current parent pid from /proc/self/stat (Linux), or undefined without procfs. */
function livePpid(): number | undefined {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // Fields after "pid (comm)": state, ppid, ... The comm may itself contain spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function ignore(): void {}
