console.error("warning!"); console.log("value"); process.exitCode = 2
