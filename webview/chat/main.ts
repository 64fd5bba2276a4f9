/**
 * Chat view page: a transcript and a prompt box. Until a model is served it shows the host's
 * notice as the reply instead of inventing one.
 */
import type { ChatViewState } from "../../src/protocol/webview";
import { connectToHost, element } from "../shared/host";

const app = document.getElementById("app") as HTMLElement;
const transcript = element("div", { class: "transcript", role: "log", "aria-label": "Conversation" });
const form = element("form", { class: "prompt" });
const input = element("textarea", { rows: "3", placeholder: "Ask the tuned model…", "aria-label": "Message" });
const send = element("button", { type: "submit" }, "Send");
const modelLine = element("p", { class: "muted model-line" });

function addMessage(role: "user" | "assistant" | "notice", text: string): void {
  transcript.append(element("div", { class: `message ${role}` }, text));
  transcript.scrollTop = transcript.scrollHeight;
}

function render(state: ChatViewState): void {
  modelLine.textContent = state.model ? `Model: ${state.model}` : "No model loaded";
  if (transcript.childElementCount === 0) addMessage("notice", state.notice);
  document.body.dataset["ready"] = "true";
}

const host = connectToHost("chat", (message) => {
  if (message.type === "init" && message.view === "chat") render(message.state);
  if (message.type === "chat.notice") addMessage("notice", message.text);
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  addMessage("user", text);
  host.send({ type: "chat.send", text });
  input.value = "";
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});
form.append(input, send);
app.replaceChildren(modelLine, transcript, form);
