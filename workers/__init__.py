"""The worker process: registers the contact-flow workflow and its activities."""
