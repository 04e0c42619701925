// Deterministic simulation: a JS client Session against a JS server Session
// over a link that delays messages, cuts connections (each side learns of it
// late, or never: half-open links that only the idle timeout detects), fails
// connection attempts, while both sides send reliable messages and the
// client sends requests. Every schedule is seeded; a failure names its seed.
//
// Invariants, inside the resume window:
//  * every reliable message (both directions) arrives exactly once, in send
//    order, and after healing every one has arrived;
//  * every request ends in exactly one outcome, a reply carrying the data
//    the server sent for that very request; the server applies each once;
//  * no gap, reset or protocol error is reported; at the end nothing is left
//    unacknowledged or pending.
// With a tiny server resume buffer, every push id is delivered in order
// once or reported in exactly one gap, never both.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sim } from '../test-support/sim.js';

const SCHEDULES = Number(process.env.EVSOCK_SIM_SCHEDULES || 150);

test(`reliable streams and requests survive ${SCHEDULES} chaotic schedules`, () => {
  let cuts = 0;
  let resumes = 0;
  let msgs = 0;
  let reqs = 0;
  for (let seed = 1; seed <= SCHEDULES; seed++) {
    const sim = new Sim(seed);
    sim.run(250);
    sim.check();
    cuts += sim.cuts;
    resumes += sim.resumes;
    msgs += sim.cSent + sim.sSent;
    reqs += sim.requests.size;
  }
  console.log(
    `simulation: ${SCHEDULES} schedules, ${msgs} reliable messages, ${reqs} requests, ${cuts} cut connections, ${resumes} resumes`,
  );
  assert.ok(resumes > SCHEDULES, 'the schedules should exercise resume');
});

test(`evicted pushes are delivered or reported as a gap (${Math.ceil(SCHEDULES / 3)} schedules)`, () => {
  let gaps = 0;
  for (let seed = 1; seed <= Math.ceil(SCHEDULES / 3); seed++) {
    const sim = new Sim(10_000 + seed, { evictMode: true });
    sim.run(200);
    sim.check();
    gaps += sim.gaps.length;
  }
  console.log(`eviction simulation: ${gaps} gaps reported, every push accounted for exactly once`);
  assert.ok(gaps > 0, 'a tiny resume buffer should produce gaps');
});
