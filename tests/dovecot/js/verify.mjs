// Verify webhook requests with the Standard Webhooks reference library.
// stdin: one JSON object per line
//   {"secret": "whsec_...", "headers": {...}, "body_b64": "..."}
// stdout: one line per request, "ok <type>" or "fail <error>".
// The tests feed it what their HTTP receiver recorded, so this is an
// independent, third-party check of our signatures.
import { Webhook } from "standardwebhooks";
import { createInterface } from "node:readline";

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
	if (line.trim() === "")
		continue;
	const req = JSON.parse(line);
	const body = Buffer.from(req.body_b64, "base64").toString("utf8");
	try {
		const event = new Webhook(req.secret).verify(body, req.headers);
		console.log(`ok ${event.type}`);
	} catch (e) {
		console.log(`fail ${e.message}`);
	}
}
