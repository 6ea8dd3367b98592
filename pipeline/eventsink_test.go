package pipeline

import "github.com/heraldhq/herald/api"

var _ api.EventSink = (*EventWriter)(nil)
