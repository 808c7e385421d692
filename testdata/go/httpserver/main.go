// Command httpserver is a small net/http server for goroscope's overhead benchmark. Each request
// does a little realistic work: it starts two goroutines that each send a value on a channel,
// joins them, and answers with a short body. Once listening it prints one line
//
//	{"ready":true,"addr":"127.0.0.1:PORT","pid":N,...}
//
// and serves until SIGTERM/SIGINT (then it exits with status 0). It never reads stdin.
//
// Flags:
//
//	-addr HOST:PORT   where to listen (default 127.0.0.1:0, i.e. any free port; the chosen
//	                  address is in the ready line)
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

type readyLine struct {
	Ready     bool   `json:"ready"`
	Addr      string `json:"addr"`
	Pid       int    `json:"pid"`
	GoVersion string `json:"go_version"`
	Cgo       bool   `json:"cgo"`
}

// square is one request's helper goroutine: it sends x*x on out.
//
//go:noinline
func square(x int, out chan<- int) {
	out <- x * x
}

// handle starts two helper goroutines, joins them through a channel and writes a short body.
func handle(w http.ResponseWriter, r *http.Request) {
	x := len(r.URL.Path)
	out := make(chan int)
	go square(x, out)
	go square(x+1, out)
	sum := <-out + <-out
	body := "ok " + strconv.Itoa(sum) + "\n"
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write([]byte(body))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen on `HOST:PORT`")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	cgo := cgoValue() == 42

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", handle)
	server := &http.Server{Handler: mux}
	failed := make(chan error, 1)
	go func() {
		failed <- server.Serve(ln)
	}()

	line, err := json.Marshal(readyLine{
		Ready:     true,
		Addr:      ln.Addr().String(),
		Pid:       os.Getpid(),
		GoVersion: runtime.Version(),
		Cgo:       cgo,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))

	select {
	case <-stop:
		_ = server.Close()
		os.Exit(0)
	case err := <-failed:
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}
