// The page's compute worker: training and the WebGPU device live here, so the page's own
// thread only draws. The page creates it (mmanet_app's `web_worker` module) and posts it the
// WebAssembly module it has already downloaded and compiled; the worker instantiates that module
// (a memory of its own, no second download or compilation) and serves the page's requests.
import init, { worker_main } from "./mmanet_web.js";

// whole stacks in crash reports (the console shows where a panic came from)
Error.stackTraceLimit = 100;

// Burn's shaders may declare `enable subgroups;`, which a WebGPU device accepts only when it was
// created with the "subgroups" feature; wgpu does not ask for it, so ask here whenever the
// adapter offers it.
if (self.navigator?.gpu && self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = function (descriptor = {}) {
    const features = [...(descriptor.requiredFeatures ?? [])];
    if (this.features.has("subgroups") && !features.includes("subgroups")) {
      features.push("subgroups");
    }
    return requestDevice.call(this, { ...descriptor, requiredFeatures: features });
  };
}

// The first message is the module; worker_main then takes over the messages (the page waits
// for its "Ready" before sending requests).
self.onmessage = async (event) => {
  self.onmessage = null;
  try {
    await init({ module_or_path: event.data });
    worker_main();
  } catch (e) {
    self.postMessage(JSON.stringify({ Crashed: `the compute worker could not start: ${e}` }));
  }
};
