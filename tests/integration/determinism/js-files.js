const fs = require("fs"); fs.mkdirSync("out", {recursive: true}); fs.writeFileSync("out/data.json", JSON.stringify({n: 42})); console.log("ok")
