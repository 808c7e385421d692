module goroscope.test/cpuburn

go 1.19
