"""The console web page: one self-contained HTML document, no external assets.

The page reads the token from its own URL (``/?token=...``), lists the VMs from /api/status (polled
every 2 s) and opens a live websocket console per VM, including VMs the RM creates at run time; a
VM that is destroyed is marked so, and one created again under the same name gets a new console. Typing into a console sends keystrokes as
UART input; the text box below it sends a whole line followed by a carriage return.
"""

from __future__ import annotations

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gunyah-net consoles</title>
<style>
body { font-family: sans-serif; margin: 1em; background: #f4f4f4; }
section { margin-bottom: 1.5em; }
h2 { font-size: 1em; margin: 0 0 .3em 0; }
.state { font-weight: normal; color: #555; }
pre { background: #111; color: #ddd; height: 16em; overflow-y: auto; margin: 0;
      padding: .4em; white-space: pre-wrap; word-break: break-all; outline: none; }
pre:focus { box-shadow: 0 0 0 2px #49f; }
input { width: 100%; box-sizing: border-box; font-family: monospace; }
</style>
</head>
<body>
<h1>gunyah-net consoles</h1>
<p id="error"></p>
<div id="vms"></div>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const auth = "token=" + encodeURIComponent(token);
const consoles = new Map();
const MAX_TEXT = 200000;

function openConsole(vm) {
  const section = document.createElement("section");
  const title = document.createElement("h2");
  const state = document.createElement("span");
  state.className = "state";
  title.append(vm.name + " (vmid 0x" + vm.vmid.toString(16) + ") ", state);
  const out = document.createElement("pre");
  out.tabIndex = 0;
  const line = document.createElement("input");
  line.placeholder = "type a line for " + vm.name + " and press Enter";
  section.append(title, out, line);
  document.getElementById("vms").append(section);
  const entry = { section: section, state: state, out: out, ws: null };
  consoles.set(vm.name, entry);
  const decoder = new TextDecoder();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/console/" +
                           encodeURIComponent(vm.name) + "?" + auth);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => {
    const text = out.textContent + decoder.decode(ev.data, { stream: true });
    out.textContent = text.length > MAX_TEXT ? text.slice(-MAX_TEXT) : text;
    out.scrollTop = out.scrollHeight;
  };
  ws.onclose = (ev) => {
    out.textContent += "\\n[console closed: " + ev.code + " " + ev.reason + "]\\n";
  };
  out.addEventListener("keydown", (ev) => {
    let data = null;
    if (ev.key === "Enter") data = "\\r";
    else if (ev.key === "Backspace") data = "\\x7f";
    else if (ev.key.length === 1 && !ev.ctrlKey && !ev.metaKey) data = ev.key;
    if (data !== null && ws.readyState === WebSocket.OPEN) { ws.send(data); ev.preventDefault(); }
  });
  line.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && ws.readyState === WebSocket.OPEN) {
      ws.send(line.value + "\\r");
      line.value = "";
    }
  });
  entry.ws = ws;
}

async function refresh() {
  try {
    const resp = await fetch("/api/status?" + auth);
    if (!resp.ok) throw new Error(resp.status + " " + (await resp.text()));
    document.getElementById("error").textContent = "";
    const listed = new Set();
    for (const vm of await resp.json()) {
      listed.add(vm.name);
      const old = consoles.get(vm.name);
      if (old && old.ws.readyState === WebSocket.CLOSED && vm.state === "running") {
        old.section.remove();  // a VM created again under the same name (vm-<vmid>)
        consoles.delete(vm.name);
      }
      if (!consoles.has(vm.name)) openConsole(vm);
      const reason = vm.reason ? ": " + vm.reason : "";
      consoles.get(vm.name).state.textContent = "[" + vm.state + reason + "]";
    }
    for (const [name, entry] of consoles) {
      if (!listed.has(name)) entry.state.textContent = "[destroyed]";
    }
  } catch (err) {
    document.getElementById("error").textContent = "status unavailable: " + err.message;
  }
}

refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""


def render_page() -> str:
    """Returns the console page's HTML."""
    return _PAGE
