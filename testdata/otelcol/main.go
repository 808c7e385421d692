// Command otelcol is the smallest OpenTelemetry Collector goroscope's OTLP tests
// need: the OTLP receiver (gRPC and HTTP), the file exporter and the debug
// exporter, nothing else. It is put together by hand the way the OpenTelemetry
// Collector Builder's generated main.go and components.go do, from the
// Collector's own modules pinned in go.mod. scripts/otelcol.sh builds and caches
// it; crates/goroscope/tests/otelcol runs it.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	info := component.BuildInfo{
		Command:     "otelcol",
		Description: "goroscope's test OpenTelemetry Collector (otlp receiver, file and debug exporters)",
		Version:     "goroscope-test",
	}
	settings := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatalf("collector server run finished with error: %v", err)
	}
}
