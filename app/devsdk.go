package app

import "io/fs"

// devSDK is what herald dev's demo page serves under /sdk/.
var devSDK fs.FS
