// Catching a program node-mgr runs (du, mariabackup…) while it runs, from /proc, and holding it
// there with SIGSTOP: a test can then act "while X runs" without racing X's end.
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

function comm(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The pid of a descendant of `root` whose program name is `name`, or null. */
export function findDescendant(root: number, name: string): number | null {
  const queue = [root];
  while (queue.length) {
    for (const c of childrenOf(queue.shift()!)) {
      if (comm(c) === name.slice(0, 15)) return c;
      queue.push(c);
    }
  }
  return null;
}

export interface FrozenChild {
  pid: number;
  /** SIGCONT: the program goes on (or dies of a signal that waited while it was stopped). */
  thaw(): void;
}

/**
 * Polls until a descendant of `root` named `name` runs, and stops it (SIGSTOP) at once, so it is
 * certainly still running when the test does its next step. Throws after timeoutMs.
 */
export async function freezeDescendant(root: number, name: string, timeoutMs: number): Promise<FrozenChild> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pid = findDescendant(root, name);
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGSTOP');
        return {
          pid,
          thaw: () => {
            try {
              process.kill(pid, 'SIGCONT');
            } catch {
              /* gone */
            }
          },
        };
      } catch {
        /* it ended between the read and the signal: wait for the next one */
      }
    }
    if (Date.now() > deadline) throw new Error(`no ${name} ran under pid ${root} within ${timeoutMs} ms`);
    await sleep(2);
  }
}
