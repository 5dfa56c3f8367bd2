const c = require("crypto"); console.log(c.createHash("sha256").update("aisp".repeat(1000)).digest("hex"))
