// The page in headless Chromium (driven by playwright-core, Debian's /usr/bin/chromium):
// 1. with WebGPU (SwiftShader): the page gets an adapter, a short MMANet run trains on it,
//    every combination's test accuracy is above chance, and a screenshot is not blank;
// 2. with WebGPU unavailable: the page has no adapter, the app says it falls back to the CPU,
//    and the same run trains there;
// 0. a plain visit: the pretrained model answers in the explorer at once, and a bundle dropped
//    on the page opens there too;
// 3. segmentation on the CPU fallback: the synthetic RGB-D scenes demo (small ESANet) trains,
//    MMANet mines a weak combination, every combination's test mIoU is above chance, and the
//    explorer segments a test scene with every model.
//
// Usage: node browser.mjs URL OUT_DIR   (scripts/web.sh test serves the page and runs this)

import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: node browser.mjs URL OUT_DIR");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
// How long one run may take before the scenario fails as hung. The WebGPU run on SwiftShader
// took 180–350 s on the machines this was first measured on, 504 s alone on a slower 2-core AMD
// EPYC, and more than 900 s there beside the native tests (its steps are CPU work, and the two
// cores were shared): 30 minutes leaves that room and still stops a hang.
const RUN_TIMEOUT_MS = Number(process.env.MMANET_WEB_TIMEOUT_S ?? 1800) * 1000;
// A short run: the teacher, SF-MD and MMANet, 3 epochs each (warm-up 1, mining in epoch 0).
const RUN = process.env.MMANET_WEB_RUN ?? "preset=mfeat-demo&methods=sf-md,mmanet&epochs=3&train=1";
// The same run on WebGPU, in batches of 256 instead of 64: 33 steps instead of 159. On
// SwiftShader a step costs the same at either size (a few hundred kernel launches, each a fixed
// cost on the CPU), and those steps were most of the test command's CPU time beside the native
// build (README, "Build and test cost"); the checks are the same.
const WEBGPU_RUN = process.env.MMANET_WEB_WEBGPU_RUN ?? `${RUN}&batch=256`;
// A short anti-spoofing run: 400 synthetic samples (RGB, depth, IR images of 32×32), 6 epochs each.
const ANTISPOOF_RUN = process.env.MMANET_WEB_ANTISPOOF_RUN ??
  "preset=synthetic-antispoof&methods=sf-md,mmanet&samples=400&epochs=6&train=1";
// A short segmentation run: 60 scenes of 64×96, 6 epochs each (warm-up 3, mining in 0–2).
const SEG_RUN = process.env.MMANET_WEB_SEG_RUN ??
  "preset=scenes-demo&methods=sf-md,mmanet&scenes=60&epochs=6&warmup=3&train=1";

/** The mIoU (%) of guessing every pixel's class uniformly at random, from the test split's
 * labelled pixels per class: IoU_k = (p_k/K) / (p_k + 1/K − p_k/K). */
function chanceMiou(pixels) {
  const total = pixels.reduce((a, b) => a + b, 0);
  const k = pixels.length;
  const ious = pixels.map((n) => {
    const p = n / total;
    return (p / k) / (p + 1 / k - p / k);
  });
  return (100 * ious.reduce((a, b) => a + b, 0)) / k;
}

// This machine has no network: keep Chromium from reaching out.
const QUIET = [
  "--no-sandbox", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-quic",
];
const WEBGPU = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
  "--enable-features=Vulkan", "--use-angle=swiftshader"];

/** Decodes an 8-bit RGB(A) PNG (what Chromium's screenshots are) into pixels. */
function decodePng(buf) {
  let pos = 8, width = 0, height = 0, channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("ascii", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8) throw new Error(`PNG bit depth ${data[8]} not handled`);
      channels = { 2: 3, 6: 4 }[data[9]];
      if (!channels) throw new Error(`PNG colour type ${data[9]} not handled`);
    } else if (type === "IDAT") idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = v & 255;
    }
  }
  return { width, height, channels, px };
}

/** Distinct colours and the share of pixels that differ from the most common one. */
function pictureStats(png) {
  const { width, height, channels, px } = decodePng(png);
  const counts = new Map();
  for (let i = 0; i < width * height; i++) {
    const k = (px[i * channels] << 16) | (px[i * channels + 1] << 8) | px[i * channels + 2];
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const top = Math.max(...counts.values());
  return { colours: counts.size, nonBackground: 1 - top / (width * height) };
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Headless Chromium with `flags` and a fresh profile; the page's console goes to `log`. */
async function launch(flags) {
  const userDataDir = mkdtempSync(join(tmpdir(), "mmanet-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [...QUIET, ...flags],
    viewport: { width: 1280, height: 800 },
  });
  const log = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e}`));
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, log, close };
}

/** Saves the page as OUT_DIR/NAME.png and checks the picture is not blank. */
async function screenshot(page, name) {
  await page.waitForTimeout(500);
  const png = await page.screenshot();
  const shot = join(outDir, `${name}.png`);
  writeFileSync(shot, png);
  const stats = pictureStats(png);
  console.log(`${name}: screenshot ${shot}: ${stats.colours} colours, ` +
    `${(stats.nonBackground * 100).toFixed(1)}% off the background`);
  check(stats.colours > 50 && stats.nonBackground > 0.02, "the screenshot is blank");
}

/** Records every animation frame's time in `window.frameTimes` (the page's UI thread). */
async function recordFrames(page) {
  await page.addInitScript(() => {
    window.frameTimes = [];
    const tick = (t) => { window.frameTimes.push(t); requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
}

/** The gaps between the frames recorded since frame `from`: median, 99th percentile, longest. */
async function frameGaps(page, from) {
  return page.evaluate((from) => {
    const t = window.frameTimes.slice(from ?? 0);
    const g = t.slice(1).map((x, i) => x - t[i]).sort((a, b) => a - b);
    const q = (p) => g[Math.min(g.length - 1, Math.floor(p * g.length))] ?? NaN;
    // the three longest gaps, each with when it began (ms after the first frame counted)
    const worst = t.slice(1).map((x, i) => ({ at: t[i] - t[0], gap: x - t[i] }))
      .sort((a, b) => b.gap - a.gap).slice(0, 3)
      .map(({ at, gap }) => ({ at: Math.round(at), gap: Math.round(gap) }));
    return { frames: t.length, median: q(0.5), p99: q(0.99), longest: g[g.length - 1] ?? NaN,
             worst, span: Math.round(t[t.length - 1] - t[0]) };
  }, from);
}

function describeGaps(gaps) {
  return `${gaps.frames} frames in ${(gaps.span / 1000).toFixed(1)} s; gap median ` +
    `${gaps.median.toFixed(0)} ms, 99th percentile ${gaps.p99.toFixed(0)} ms, longest ` +
    `${gaps.longest.toFixed(0)} ms (longest three: ` +
    `${gaps.worst.map((w) => `${w.gap} ms at ${(w.at / 1000).toFixed(1)} s`).join(", ")})`;
}

async function scenario(name, { flags, params, expectAdapter, expectDevice, explorer,
                                 mustBeatChance = /./ }) {
  const { page, log, close } = await launch(flags);
  try {
    const started = Date.now();
    // every animation frame's time, to see whether training ever holds the page up
    await recordFrames(page);
    await page.goto(`${url}/?${params}`);

    const adapter = await page.evaluate(async () => {
      if (!navigator.gpu) return null;
      const a = await navigator.gpu.requestAdapter();
      if (!a) return null;
      return { vendor: a.info?.vendor, architecture: a.info?.architecture,
               subgroups: a.features.has("subgroups") };
    });
    console.log(`${name}: WebGPU adapter: ${JSON.stringify(adapter)}`);
    check(expectAdapter ? adapter !== null : adapter === null,
      expectAdapter ? "the page got no WebGPU adapter" : "WebGPU was expected to be unavailable");

    // frames are counted from the moment training starts (not while the module loads)
    await page.waitForFunction(() => {
      const h = window.mmanetApp;
      const crashed = document.getElementById("crash")?.style.display === "block";
      if (crashed || (h && h.has_panicked())) return true;
      const s = h && JSON.parse(h.status());
      if (s && s.state !== "idle") {
        window.trainingFrom = window.frameTimes.length;
        return true;
      }
      return false;
    }, null, { timeout: RUN_TIMEOUT_MS, polling: 100 });
    // and from the first training step on (the page's own start-up frames left out)
    await page.evaluate(() => {
      const watch = setInterval(() => {
        const s = JSON.parse(window.mmanetApp.status());
        if (s.stages?.some((st) => st.steps > 0) || s.state !== "running") {
          window.stepsFrom = window.frameTimes.length;
          clearInterval(watch);
        }
      }, 20);
    });
    try {
      await page.waitForFunction(() => {
        const h = window.mmanetApp;
        if (!h) return document.getElementById("crash")?.style.display === "block";
        if (h.has_panicked()) return true;
        const s = JSON.parse(h.status());
        return s && ["finished", "failed", "stopped"].includes(s.state);
      }, null, { timeout: RUN_TIMEOUT_MS, polling: 1000 });
    } catch (e) {
      // say how far the run got, so that a slow machine can be told from a hung run
      const at = await page.evaluate(() => {
        const s = window.mmanetApp && JSON.parse(window.mmanetApp.status());
        return s && { state: s.state, status: s.status,
                      steps: s.stages?.map((st) => st.steps) };
      }).catch(() => null);
      throw new Error(`the run did not end within ${RUN_TIMEOUT_MS / 1000} s ` +
        `(MMANET_WEB_TIMEOUT_S); it was at ${JSON.stringify(at)}: ${e.message}`);
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const crash = await page.evaluate(() => document.getElementById("crash").textContent);
    check(!crash, `the page crashed: ${crash}`);
    const status = JSON.parse(await page.evaluate(() => window.mmanetApp.status()));
    console.log(`${name}: ${status.status} in ${seconds} s; device: ${status.device}`);
    const gaps = await frameGaps(page, await page.evaluate(() => window.trainingFrom));
    console.log(`${name}: frames while training: ${describeGaps(gaps)}`);
    const stepGaps = await frameGaps(page, await page.evaluate(() => window.stepsFrom));
    console.log(`${name}: frames from the first training step on: ${describeGaps(stepGaps)}`);
    console.log(`${name}: trained in: ${status.runs_on}`);
    const t = status.timing;
    if (t) {
      console.log(`${name}: where the time went: ` +
        t.phases.map((p) => `${p.phase} ${p.seconds.toFixed(1)} s (${p.count}×)`).join(", ") +
        `; ${t.steps} steps, median ${t.step_median_ms.toFixed(1)} ms, ` +
        `stalls beyond 3× the median ${t.slow_step_excess_s.toFixed(1)} s`);
      console.log(`${name}: WebAssembly memory: the compute worker ` +
        `${t.memory_mb?.toFixed(0)} MB, the page ${status.page_memory_mb?.toFixed(0)} MB`);
    }
    const ui = status.ui_frame_ms;
    if (ui) {
      console.log(`${name}: the app's own work per frame while training (${ui.frames} frames): ` +
        `median ${ui.median.toFixed(1)} ms, longest ${ui.longest.toFixed(1)} ms`);
    }
    check(status.state === "finished", `the run did not finish: ${status.status}`);
    // the run trained in the page's compute worker, not on the page's thread
    check(/web worker/.test(status.runs_on ?? ""), `the run trained in: ${status.runs_on}`);
    check(expectDevice.test(status.device ?? ""), `unexpected device: ${status.device}`);

    // the students serve every combination above chance (those `mustBeatChance` matches); the
    // teacher (trained on complete data only) is checked on the complete combination
    const seg = status.task === "segmentation";
    const metric = seg ? "miou" : "accuracy";
    const table = status.tables.find((t) => t.metric === metric);
    check(table, `no ${metric} table on the page`);
    const chance = seg ? chanceMiou(status.class_counts[2]) : 100 / status.classes;
    console.log(`${name}: ${metric} (%), chance ${chance.toFixed(1)}:`);
    console.log(`  ${"".padEnd(16)}${table.methods.map((m) => m.padStart(9)).join("")}`);
    const full = table.rows.length - 2; // the last combination, before `Average`
    table.rows.forEach((row, r) => {
      const cells = table.cells[r].map(([mean]) => mean);
      console.log(`  ${row.padEnd(16)}${cells.map((v) => v.toFixed(1).padStart(9)).join("")}`);
      cells.forEach((v, m) => {
        if (table.methods[m] === "Teacher" && r !== full) return;
        if (!mustBeatChance.test(row)) return;
        check(v > chance, `${table.methods[m]} on ${row}: ${v.toFixed(1)}% is not above chance`);
      });
    });
    check(table.methods.includes("MMANet"), "no MMANet column");

    // the mining panel's data: MAR picked a weak set during MMANet's warm-up
    const mmanet = status.stages.find((s) => s.name === "mmanet");
    check(mmanet?.weak_set?.length > 0, `MMANet mined no weak set: ${JSON.stringify(mmanet)}`);
    console.log(`${name}: weak set mined: ${mmanet.weak_set.join(", ")}`);

    if (explorer) {
      // the explorer (on show from the start) loads the run's models and predicts a test sample
      await page.waitForFunction(() => {
        const s = JSON.parse(window.mmanetApp.status());
        return s.explorer.prediction !== null || s.explorer.models?.error;
      }, null, { timeout: 60_000, polling: 250 });
      const ex = JSON.parse(await page.evaluate(() => window.mmanetApp.status())).explorer;
      check(Array.isArray(ex.models) && ex.models.includes("MMANet"),
        `explorer models: ${JSON.stringify(ex.models)}`);
      const p = ex.prediction;
      check(!p.error && p.models.length === ex.models.length, `explorer: ${JSON.stringify(p)}`);
      if (seg) {
        // a label map per model with several classes, scored against the scene's labels
        for (const m of p.models) {
          check(m.classes_present.length >= 2 && m.miou > 0,
            `explorer: ${m.model}'s map ${JSON.stringify(m)}`);
        }
        console.log(`${name}: explorer, test scene ${p.sample} through ${p.modalities}: ` +
          p.models.map((m) => `${m.model} mIoU ${(m.miou * 100).toFixed(1)}% ` +
            `(${m.classes_present.length} classes)`).join("; "));
      } else {
        for (const m of p.models) {
          const sum = m.probs.reduce((a, b) => a + b, 0);
          check(m.probs.length === status.classes && Math.abs(sum - 1) < 1e-3,
            `explorer: ${m.model}'s probabilities ${JSON.stringify(m.probs)}`);
        }
        console.log(`${name}: explorer, test sample ${p.sample} through ${p.modalities}: ` +
          p.models.map((m) => `${m.model} → class ${m.probs.indexOf(Math.max(...m.probs))}`).join("; "));
      }
    }

    // the same page idle for two seconds after the run: what the browser's drawing alone allows
    const idleFrom = await page.evaluate(() => window.frameTimes.length);
    await page.waitForTimeout(2000);
    const idle = await frameGaps(page, idleFrom);
    console.log(`${name}: idle after the run: ${describeGaps(idle)}`);
    // then two seconds of the mouse moving over the page, which repaints it at every frame with
    // no training beside it: what drawing the page costs here
    const hoverFrom = await page.evaluate(() => window.frameTimes.length);
    const hoverUntil = Date.now() + 2000;
    for (let k = 0; Date.now() < hoverUntil; k++) {
      await page.mouse.move(300 + (k % 40) * 10, 300 + (k % 7) * 20);
      await page.waitForTimeout(15);
    }
    const hover = await frameGaps(page, hoverFrom);
    const drawn = JSON.parse(await page.evaluate(() => window.mmanetApp.status())).recent_frame_ms;
    console.log(`${name}: repainting with no run: ${describeGaps(hover)}; the app's own work per ` +
      `frame median ${drawn?.median.toFixed(1)} ms, longest ${drawn?.longest.toFixed(1)} ms`);
    await screenshot(page, name);
    writeFileSync(join(outDir, `${name}.json`),
      JSON.stringify({ seconds, adapter, gaps, stepGaps, idle, hover, status }, null, 2));
  } catch (e) {
    console.error(`${name}: FAILED: ${e.message}\n--- page console ---\n${log.slice(-(Number(process.env.MMANET_WEB_LOG_LINES ?? 40))).join("\n")}`);
    throw e;
  } finally {
    await close();
  }
}

// A plain visit: the page opens the pretrained mfeat model in the explorer and predicts a test
// sample at once, before any training.
async function pretrainedScenario(name) {
  const { page, log, close } = await launch([]);
  try {
    const started = Date.now();
    await recordFrames(page);
    await page.goto(`${url}/`);
    await page.waitForFunction(() => {
      const h = window.mmanetApp;
      if (document.getElementById("crash")?.style.display === "block") return true;
      if (!h) return false;
      if (h.has_panicked()) return true;
      const s = JSON.parse(h.status());
      return s && (s.explorer.prediction !== null || s.explorer.models?.error || s.notice);
    }, null, { timeout: 120_000, polling: 100 });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const crash = await page.evaluate(() => document.getElementById("crash").textContent);
    check(!crash, `the page crashed: ${crash}`);
    const status = JSON.parse(await page.evaluate(() => window.mmanetApp.status()));
    const ex = status.explorer;
    check(status.tab === "Explorer", `the page opened on ${status.tab}`);
    check(status.state === "idle", `something is training: ${status.status}`);
    check(ex.bundle === "mfeat-mmanet.mmanet", `explorer bundle: ${ex.bundle} (${status.notice})`);
    check(JSON.stringify(ex.models) === JSON.stringify(["MMANet (bundle)"]),
      `explorer models: ${JSON.stringify(ex.models)}`);
    const p = ex.prediction;
    check(!p.error && p.models.length === 1, `explorer: ${JSON.stringify(p)}`);
    const probs = p.models[0].probs;
    const sum = probs.reduce((a, b) => a + b, 0);
    check(probs.length === 10 && Math.abs(sum - 1) < 1e-3, `probabilities ${JSON.stringify(probs)}`);
    console.log(`${name}: explorer answered ${seconds} s after the visit: test sample ${p.sample} ` +
      `through ${p.modalities} → class ${probs.indexOf(Math.max(...probs))} ` +
      `(p = ${Math.max(...probs).toFixed(3)})`);
    const gaps = await frameGaps(page, 0);
    console.log(`${name}: frames from the visit to the first prediction: ${describeGaps(gaps)}`);
    await screenshot(page, name);
    writeFileSync(join(outDir, `${name}.json`), JSON.stringify({ seconds, gaps, status }, null, 2));

    // a bundle dropped on the page opens in the explorer (read through the browser's File API)
    const bundle = readFileSync(new URL("../../app/assets/mfeat-mmanet.mmanet", import.meta.url));
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "dropped.mmanet"));
      const canvas = document.querySelector("canvas");
      for (const type of ["dragenter", "dragover", "drop"]) {
        canvas.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
      }
    }, bundle.toString("base64"));
    await page.waitForFunction(() => {
      const s = JSON.parse(window.mmanetApp.status());
      return (s.explorer.bundle === "dropped.mmanet" && s.explorer.prediction !== null) || s.notice;
    }, null, { timeout: 30_000, polling: 100 });
    const dropped = JSON.parse(await page.evaluate(() => window.mmanetApp.status()));
    check(dropped.explorer.bundle === "dropped.mmanet" && !dropped.explorer.prediction.error,
      `the dropped bundle: ${JSON.stringify(dropped.explorer)} (${dropped.notice})`);
    console.log(`${name}: a dropped bundle opened in the explorer and predicted`);
  } catch (e) {
    console.error(`${name}: FAILED: ${e.message}\n--- page console ---\n${log.slice(-40).join("\n")}`);
    throw e;
  } finally {
    await close();
  }
}

// Pause, continue, stop and continue a stopped run in the page, as its buttons do (through the
// page's hook): the compute worker holds while paused, stops at its next step, and a stopped
// run continues to its end.
async function controlsScenario(name) {
  const { page, log, close } = await launch([]);
  const status = async () => JSON.parse(await page.evaluate(() => window.mmanetApp.status()));
  const steps = (s) => s.stages.reduce((n, st) => n + st.steps, 0);
  const waitFor = (what, timeout = 120_000) => page.waitForFunction(what, null,
    { timeout, polling: 50 });
  try {
    await page.goto(`${url}/?preset=mfeat-demo&methods=sf-md,mmanet&epochs=12&device=cpu&train=1`);
    await waitFor(() => {
      const s = window.mmanetApp && JSON.parse(window.mmanetApp.status());
      return s && s.stages.reduce((n, st) => n + st.steps, 0) >= 20;
    });
    await page.evaluate(() => window.mmanetApp.toggle_pause());
    check((await status()).state === "paused", "the run did not pause");
    // the step under way may still report; after that nothing may arrive
    await page.waitForTimeout(500);
    const held = steps(await status());
    await page.waitForTimeout(1500);
    const after = steps(await status());
    check(after === held, `steps arrived while paused: ${held} → ${after}`);
    console.log(`${name}: paused at ${held} steps; none arrived in 1.5 s`);
    await page.evaluate(() => window.mmanetApp.toggle_pause());
    await page.waitForFunction((n) => JSON.parse(window.mmanetApp.status()).stages
      .reduce((m, st) => m + st.steps, 0) > n, held, { timeout: 60_000, polling: 50 });
    console.log(`${name}: continued`);
    await page.evaluate(() => window.mmanetApp.stop());
    await waitFor(() => JSON.parse(window.mmanetApp.status()).state === "stopped");
    const stopped = await status();
    check(/stopped by the user/.test(stopped.status), `stopped: ${stopped.status}`);
    console.log(`${name}: ${stopped.status}`);
    check(await page.evaluate(() => window.mmanetApp.continue_run()), "no run to continue");
    await waitFor(() => ["finished", "failed"].includes(
      JSON.parse(window.mmanetApp.status()).state), RUN_TIMEOUT_MS);
    const done = await status();
    check(done.state === "finished", `the continued run did not finish: ${done.status}`);
    check(/web worker/.test(done.runs_on ?? ""), `the run trained in: ${done.runs_on}`);
    const table = done.tables.find((t) => t.metric === "accuracy");
    check(table?.methods.includes("MMANet"), `no MMANet column: ${JSON.stringify(table?.methods)}`);
    console.log(`${name}: the continued run finished: ${done.status}`);
  } catch (e) {
    console.error(`${name}: FAILED: ${e.message}\n--- page console ---\n${log.slice(-40).join("\n")}`);
    throw e;
  } finally {
    await close();
  }
}

const only = process.env.MMANET_WEB_SCENARIO;
const scenarios = [
  ["pretrained", { pretrained: true }],
  ["webgpu", { flags: WEBGPU, params: `${WEBGPU_RUN}&device=wgpu`, expectAdapter: true,
               expectDevice: /WebGPU/ }],
  ["cpu-fallback", { flags: [], params: `${RUN}&device=auto&tab=explorer`, expectAdapter: false,
                     expectDevice: /^cpu .*no WebGPU adapter/, explorer: true }],
  ["antispoof-cpu-fallback", { flags: [], params: `${ANTISPOOF_RUN}&device=auto&tab=explorer`,
                               expectAdapter: false, expectDevice: /^cpu .*no WebGPU adapter/,
                               explorer: true,
                               // a short run: the weak cues (rgb 0.25, ir 0.4) can still be
                               // near chance alone; depth and the average may not
                               mustBeatChance: /depth|Average/ }],
  ["controls", { controls: true }],
  ["seg-cpu-fallback", { flags: [], params: `${SEG_RUN}&device=auto&tab=explorer`,
                         expectAdapter: false, expectDevice: /^cpu .*no WebGPU adapter/,
                         explorer: true }],
];
// Segmentation on SwiftShader's WebGPU: minutes of kernel compilation on the CPU, so it is a
// measurement run by name (MMANET_WEB_SCENARIO=seg-webgpu), not part of the default test.
const onRequest = {
  "seg-webgpu": { flags: WEBGPU, params: `${SEG_RUN}&device=wgpu`, expectAdapter: true,
                  expectDevice: /WebGPU/ },
};
if (only && onRequest[only]) scenarios.push([only, onRequest[only]]);
let failed = 0;
for (const [name, opts] of scenarios) {
  if (only && only !== name) continue;
  try {
    await (opts.pretrained ? pretrainedScenario(name)
      : opts.controls ? controlsScenario(name) : scenario(name, opts));
    console.log(`${name}: ok`);
  } catch {
    failed++;
  }
}
process.exit(failed ? 1 : 0);
