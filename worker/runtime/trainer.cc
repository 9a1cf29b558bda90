#include "worker/runtime/trainer.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "checkpoint/checkpoint.h"
#include "collectives/overlap/bucketed_allreduce.h"
#include "common/log.h"
#include "common/status.h"
#include "fmt/format.h"
#include "worker/runtime/checkpoint_group.h"
#include "worker/train/adamw.h"
#include "worker/train/data.h"
#include "worker/train/gpt.h"

namespace sublet::worker {
namespace {

using collectives::DataType;
using collectives::ReduceOp;
using train::Param;
using train::Tensor;

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// More steps than any run takes, and few enough that every data position
// (step x global batch) fits in 64 bits.
constexpr int64_t kMaxSteps = 1'000'000'000;
constexpr int64_t kMaxGlobalBatch = 1 << 20;

// Test hook (--test-checkpoint-write-delay-ms): every checkpoint file waits
// this long before its first byte, so the writer is still reading the state
// when later steps run, and a step that wrote into a lent buffer would show
// in the committed bytes.
class SlowWritingFileSystem : public checkpoint::PosixFileSystem {
 public:
  explicit SlowWritingFileSystem(absl::Duration delay) : delay_(delay) {}
  absl::StatusOr<std::unique_ptr<checkpoint::WritableFile>> NewWritableFile(
      const std::string& path) override {
    absl::SleepFor(delay_);
    return PosixFileSystem::NewWritableFile(path);
  }

 private:
  absl::Duration delay_;
};

// What defines a run beyond its model (whose shapes a load checks): a resume
// with other values would silently train another run.
std::string RunConfig(const TrainerOptions& o) {
  return fmt::format("--steps {} --seq-len {} --global-batch {} --data {}", o.steps, o.seq_len,
                     o.global_batch, o.data);
}

std::unique_ptr<checkpoint::FileSystem> MakeFileSystem(const TrainerOptions& o) {
  if (o.test_checkpoint_write_delay_ms > 0) {
    return std::make_unique<SlowWritingFileSystem>(
        absl::Milliseconds(o.test_checkpoint_write_delay_ms));
  }
  return std::make_unique<checkpoint::PosixFileSystem>();
}

class Trainer {
 public:
  Trainer(const TrainerOptions& o, ProcessGroups& g, PreemptionNotice& notice,
          ProgressReporter* progress, const LogLineFn& log_line)
      : o_(o), g_(g), notice_(notice), progress_(progress), log_line_(log_line),
        ckpt_group_(*g.ckpt), tp_(g.tp.get(), o.tp_chunks) {}

  absl::StatusOr<TrainOutcome> Run();

 private:
  absl::Status Setup();
  absl::Status Resume();
  absl::Status RefuseForeignCheckpoints(const absl::Status& not_loaded);
  absl::Status NewLineage();
  absl::StatusOr<bool> AgreeOnPreemption();
  absl::Status Step(int64_t step);
  absl::Status ReduceGradients();
  absl::Status Save(int64_t completed, bool sync);
  void BuildShards();  // shards_ over the live values and moments
  void Update(int64_t step, float lr);  // AdamW, out of place when the state is lent
  absl::StatusOr<TrainOutcome> Finish(int64_t completed, TrainOutcome outcome);
  void Log(const nlohmann::ordered_json& j) {
    if (log_line_) log_line_(j.dump());
  }
  void LogCheckpoint(const checkpoint::SaveStats& s) {
    if (progress_) progress_->SetCheckpointStats(static_cast<int64_t>(s.total_bytes), s.persist_s);
    Log({{"event", "checkpoint"}, {"step", s.step}, {"bytes", s.total_bytes},
         {"stall_s", s.stall_s}, {"persist_s", s.persist_s}});
  }
  int64_t CheckpointStep() const {
    auto s = checkpointer_ ? checkpointer_->last_committed_step() : std::nullopt;
    return s ? *s : resumed_step_;
  }
  checkpoint::Cursor CursorAt(int64_t completed) const {
    return {completed, static_cast<uint64_t>(completed * o_.global_batch),
            absl::StrCat("seed=", o_.seed)};
  }

  const TrainerOptions& o_;
  ProcessGroups& g_;
  PreemptionNotice& notice_;
  ProgressReporter* progress_;
  const LogLineFn& log_line_;
  CommunicatorGroup ckpt_group_;
  train::TensorParallel tp_;
  train::GptParams params_;
  std::unique_ptr<train::GptModel> model_;
  std::vector<Tensor> m_, v_;  // AdamW moments, one per parameter
  // Async checkpoints: the other copy of values and moments. After a save
  // lends the live state to the writer (lent_), the next update writes into
  // these and the two swap (declared before checkpointer_, which joins its
  // writer first when the trainer is destroyed).
  std::vector<Tensor> spare_value_, spare_m_, spare_v_;
  bool lent_ = false;
  std::unique_ptr<train::DataSource> data_;
  std::unique_ptr<collectives::overlap::BucketedAllReduce> dp_reduce_;
  std::vector<size_t> dp_order_;  // dp_reduce_'s gradient k is params_.params[dp_order_[k]]
  train::LrSchedule schedule_;
  std::unique_ptr<checkpoint::FileSystem> fs_ = MakeFileSystem(o_);
  std::vector<checkpoint::TensorShard> shards_;
  std::unique_ptr<checkpoint::Checkpointer> checkpointer_;
  checkpoint::RunInfo run_;  // stamped into every checkpoint (Resume sets it)
  int64_t start_step_ = 0;
  int64_t resumed_step_ = -1;
  double last_loss_ = 0, last_tokens_per_s_ = 0;
};

absl::Status Trainer::Setup() {
  SUBLET_ASSIGN_OR_RETURN(params_, train::InitGptParams(o_.model, g_.tp_size, g_.tp_rank, o_.seed));
  model_ = std::make_unique<train::GptModel>(&params_, &tp_);
  for (const Param& p : params_.params) {
    m_.push_back(Tensor::Zeros(p.value.shape));
    v_.push_back(Tensor::Zeros(p.value.shape));
  }
  if (o_.data == "synthetic") {
    data_ = train::SyntheticData(o_.seed, o_.model.vocab);
  } else {
    SUBLET_ASSIGN_OR_RETURN(data_, train::TextData(o_.data, o_.seed, o_.model.vocab,
                                                   o_.seq_len + 2));
  }
  std::vector<collectives::overlap::BucketedAllReduce::Gradient> grads;
  dp_order_ = params_.BackwardOrder();
  for (size_t i : dp_order_) {
    grads.push_back({params_.params[i].grad.data.data(), params_.params[i].grad.data.size()});
  }
  collectives::overlap::BucketedAllReduceOptions bo;
  bo.op = ReduceOp::kSum;  // gradients are pre-scaled by 1 / global tokens
  bo.first_bucket_bytes = 64 << 10;
  bo.bucket_bytes = 1 << 20;
  dp_reduce_ = std::make_unique<collectives::overlap::BucketedAllReduce>(*g_.dp, grads, bo);
  schedule_.peak = o_.lr;
  schedule_.min_lr = o_.lr / 10;
  schedule_.warmup = std::clamp<int64_t>(o_.steps / 10, 1, 100);
  schedule_.total = o_.steps;

  BuildShards();
  return absl::OkStatus();
}

void Trainer::BuildShards() {
  shards_.clear();
  auto add = [&](const std::string& name, const Param& p, Tensor& t) {
    checkpoint::TensorSpec spec{name, checkpoint::DType::kF32, p.global_shape, p.split_dim};
    shards_.push_back({spec, reinterpret_cast<std::byte*>(t.data.data()),
                       t.data.size() * sizeof(float)});
  };
  for (size_t i = 0; i < params_.params.size(); ++i) {
    Param& p = params_.params[i];
    add(p.name, p, p.value);
    add("adam.m." + p.name, p, m_[i]);
    add("adam.v." + p.name, p, v_[i]);
  }
}

void Trainer::Update(int64_t step, float lr) {
  if (!lent_) {
    for (size_t i = 0; i < params_.params.size(); ++i) {
      Param& p = params_.params[i];
      train::AdamWUpdate({}, step + 1, lr, p.decay, p.grad, &p.value, &m_[i], &v_[i]);
    }
    return;
  }
  // The checkpoint writer is still reading the state: this step writes the
  // new one into the spare buffers (free: the save that had them finished
  // before the current one started) and they swap roles.
  for (size_t i = 0; i < params_.params.size(); ++i) {
    Param& p = params_.params[i];
    train::AdamWUpdateInto({}, step + 1, lr, p.decay, p.grad, p.value, m_[i], v_[i],
                           &spare_value_[i], &spare_m_[i], &spare_v_[i]);
    p.value.data.swap(spare_value_[i].data);
    m_[i].data.swap(spare_m_[i].data);
    v_[i].data.swap(spare_v_[i].data);
  }
  BuildShards();
  lent_ = false;
}

// Resume rules, so that a run never trains over, nor deletes, checkpoints
// it did not write:
//  1. The newest checkpoint that loads into this model is resumed from.
//  2. None loads, but committed ones are there (another model's, say):
//     refuse (InvalidArgument naming --checkpoint-dir and why), never start
//     over in a directory whose retention would then delete them.
//  3. None at all: a fresh run, with a new lineage agreed by all ranks.
//  4. The loaded run's config (steps, seq-len, data, global batch) differs
//     from this run's: refuse unless --allow-run-change.
// The lineage of the loaded checkpoint is carried on: retention deletes only
// checkpoints of this lineage.
absl::Status Trainer::Resume() {
  run_.config = RunConfig(o_);
  if (o_.checkpoint_dir.empty()) return absl::OkStatus();
  checkpoint::LoadOptions lo;
  lo.dir = o_.checkpoint_dir;
  lo.topology = {g_.dp_size, g_.tp_size, g_.dp_rank, g_.tp_rank};
  auto loaded = checkpoint::LoadCheckpoint(*fs_, ckpt_group_, lo, shards_);
  if (absl::IsNotFound(loaded.status())) {
    SUBLET_RETURN_IF_ERROR(RefuseForeignCheckpoints(loaded.status()));
    return NewLineage();
  }
  if (!loaded.ok()) return loaded.status();
  for (const std::string& why : loaded->skipped) {
    sublet::Log(LogLevel::kWarn, "checkpoint_skipped", {{"why", why}});
  }
  if (!loaded->run.config.empty() && loaded->run.config != run_.config) {
    if (!o_.allow_run_change) {
      return absl::InvalidArgumentError(fmt::format(
          "--checkpoint-dir {}: step {} was written by a run with {}; this run has {}. Pass "
          "--allow-run-change to go on with the new settings, or use another --checkpoint-dir",
          o_.checkpoint_dir, loaded->cursor.step, loaded->run.config, run_.config));
    }
    sublet::Log(LogLevel::kWarn, "run_changed",
                {{"from", loaded->run.config}, {"to", run_.config}});
  }
  run_.lineage = loaded->run.lineage;
  start_step_ = resumed_step_ = loaded->cursor.step;
  Log({{"event", "resume"}, {"step", resumed_step_}, {"from_dp", loaded->saved_dp},
       {"from_tp", loaded->saved_tp}});
  return absl::OkStatus();
}

absl::Status Trainer::RefuseForeignCheckpoints(const absl::Status& not_loaded) {
  absl::StatusOr<std::vector<checkpoint::CheckpointInfo>> list =
      checkpoint::ListCheckpoints(*fs_, o_.checkpoint_dir);
  if (!list.ok()) return absl::OkStatus();  // no directory yet: nothing to protect
  for (const checkpoint::CheckpointInfo& info : *list) {
    if (info.state != checkpoint::CheckpointState::kCommitted) continue;
    return absl::InvalidArgumentError(fmt::format(
        "--checkpoint-dir {}: it holds committed checkpoints this run cannot load ({}); resume "
        "them with the model and flags that wrote them, or use another --checkpoint-dir",
        o_.checkpoint_dir, std::string(not_loaded.message())));
  }
  return absl::OkStatus();
}

// Rank 0 draws the lineage; a max all-reduce hands it to every rank.
absl::Status Trainer::NewLineage() {
  int64_t id = 0;
  if (g_.rank() == 0) {
    std::random_device device;
    id = static_cast<int64_t>((static_cast<uint64_t>(device()) << 31) ^ device()) & INT64_MAX;
    id = std::max<int64_t>(id, 1);
  }
  SUBLET_RETURN_IF_ERROR(g_.world->AllReduce(&id, &id, 1, DataType::kI64, ReduceOp::kMax));
  run_.lineage = fmt::format("{:016x}", id);
  return absl::OkStatus();
}

absl::StatusOr<bool> Trainer::AgreeOnPreemption() {
  // The control message is the notice's second path (the first is SIGUSR1).
  if (progress_ && progress_->NoticeReceived()) notice_.Request();
  int32_t flag = notice_.Requested() ? 1 : 0;
  SUBLET_RETURN_IF_ERROR(g_.world->AllReduce(&flag, &flag, 1, DataType::kI32, ReduceOp::kMax));
  return flag != 0;
}

absl::Status Trainer::Step(int64_t step) {
  const int64_t seq = o_.seq_len, share = o_.global_batch / g_.dp_size;
  const int64_t micro = o_.micro_batch > 0 ? o_.micro_batch : share;
  const float loss_scale = 1.0f / static_cast<float>(o_.global_batch * seq);
  params_.ZeroGrads();
  std::vector<int32_t> tokens(micro * seq), targets(micro * seq), one(seq + 1);
  double loss_sum = 0;
  for (int64_t first = 0; first < share; first += micro) {
    const uint64_t base = static_cast<uint64_t>(step * o_.global_batch + g_.dp_rank * share + first);
    for (int64_t b = 0; b < micro; ++b) {
      data_->Sequence(base + b, one);
      std::copy_n(one.begin(), seq, tokens.begin() + b * seq);
      std::copy_n(one.begin() + 1, seq, targets.begin() + b * seq);
    }
    SUBLET_ASSIGN_OR_RETURN(double sum, model_->Forward({tokens, targets, micro, seq}));
    loss_sum += sum;
    const bool last = first + micro >= share;
    train::GptModel::ReadyFn ready;
    // Gradient k of the bucketed all-reduce is BackwardOrder()[k]; backward
    // finishes them in that order, so the k-th call is gradient k.
    size_t next = 0;
    if (last && o_.overlap_dp) ready = [&](size_t) { return dp_reduce_->MarkReady(next++); };
    SUBLET_RETURN_IF_ERROR(model_->Backward(loss_scale, ready));
  }
  SUBLET_RETURN_IF_ERROR(ReduceGradients());
  SUBLET_RETURN_IF_ERROR(
      g_.world->AllReduce(&loss_sum, &loss_sum, 1, DataType::kF64, ReduceOp::kSum));
  last_loss_ = loss_sum / static_cast<double>(o_.global_batch * seq);
  if (!std::isfinite(last_loss_)) {
    return absl::InternalError(absl::StrCat("step ", step, ": loss is ", last_loss_));
  }
  return absl::OkStatus();
}

absl::Status Trainer::ReduceGradients() {
  if (!o_.overlap_dp) {
    for (size_t k = 0; k < params_.params.size(); ++k) {
      SUBLET_RETURN_IF_ERROR(dp_reduce_->MarkReady(k));
    }
  }
  // The clip norm's squares are summed gradient by gradient as each bucket
  // arrives, while the later buckets are still on the wire. Under tensor
  // parallelism a replicated gradient is a partial sum until the tensor
  // all-reduce below, so its square waits for that.
  const bool tp_partial = tp_.size() > 1;
  double sharded_sq = 0, replicated_sq = 0;
  SUBLET_RETURN_IF_ERROR(dp_reduce_->Finish([&](size_t k) {
    const Param& p = params_.params[dp_order_[k]];
    if (!tp_partial || p.split_dim >= 0) {
      sharded_sq += train::SumSquares(p.grad.data.data(), p.grad.size());
    }
  }));
  if (tp_partial) {
    std::vector<float> packed;
    for (const Param& p : params_.params) {
      if (p.split_dim < 0) packed.insert(packed.end(), p.grad.data.begin(), p.grad.data.end());
    }
    SUBLET_RETURN_IF_ERROR(tp_.AllReduceSum(packed.data(), packed.size()));
    size_t at = 0;
    for (Param& p : params_.params) {
      if (p.split_dim >= 0) continue;
      std::copy_n(packed.begin() + at, p.grad.size(), p.grad.data.begin());
      at += p.grad.size();
      replicated_sq += train::SumSquares(p.grad.data.data(), p.grad.size());
    }
    SUBLET_RETURN_IF_ERROR(
        g_.tp->AllReduce(&sharded_sq, &sharded_sq, 1, DataType::kF64, ReduceOp::kSum));
  }
  const float clip = train::ClipFactor(sharded_sq + replicated_sq, 1.0);
  if (clip != 1.0f) {
    for (Param& p : params_.params) {
      for (float& x : p.grad.data) x *= clip;
    }
  }
  return absl::OkStatus();
}

absl::Status Trainer::Save(int64_t completed, bool sync) {
  if (!checkpointer_) return absl::OkStatus();
  if (!sync && o_.async_checkpoint) {
    // Double buffering instead of a snapshot: the writer reads the state
    // where it lies and the next update writes elsewhere (Update()).
    SUBLET_RETURN_IF_ERROR(checkpointer_->SaveAsyncLent(CursorAt(completed), shards_));
    lent_ = true;
    return absl::OkStatus();
  }
  (void)checkpointer_->Wait();  // an async save's failure was already reported
  if (CheckpointStep() == completed) return absl::OkStatus();
  SUBLET_ASSIGN_OR_RETURN(checkpoint::SaveStats stats,
                          checkpointer_->Save(CursorAt(completed), shards_));
  LogCheckpoint(stats);
  return absl::OkStatus();
}

absl::StatusOr<TrainOutcome> Trainer::Finish(int64_t completed, TrainOutcome outcome) {
  SUBLET_RETURN_IF_ERROR(Save(completed, /*sync=*/true));
  if (progress_) {
    progress_->Report(completed, last_loss_, last_tokens_per_s_, CheckpointStep(), true);
  }
  return outcome;
}

absl::StatusOr<TrainOutcome> Trainer::Run() {
  SUBLET_RETURN_IF_ERROR(Setup());
  SUBLET_RETURN_IF_ERROR(Resume());
  if (!o_.checkpoint_dir.empty()) {
    checkpoint::SaveOptions so;
    so.dir = o_.checkpoint_dir;
    so.topology = {g_.dp_size, g_.tp_size, g_.dp_rank, g_.tp_rank};
    so.keep = o_.keep;
    so.run = run_;
    if (resumed_step_ >= 0) so.protect_step = resumed_step_;
    checkpointer_ = std::make_unique<checkpoint::Checkpointer>(
        *fs_, ckpt_group_, so, [this](const absl::StatusOr<checkpoint::SaveStats>& r) {
          if (r.ok()) {
            LogCheckpoint(*r);
          } else {
            sublet::Log(LogLevel::kWarn, "checkpoint_failed", {{"error", std::string(r.status().message())}});
          }
        });
    // The second copy of the state for double buffering, allocated (and
    // faulted in: zeroed) now rather than in a training step.
    if (o_.async_checkpoint && o_.checkpoint_every > 0) {
      for (const Param& p : params_.params) {
        spare_value_.push_back(Tensor::Zeros(p.value.shape));
        spare_m_.push_back(Tensor::Zeros(p.value.shape));
        spare_v_.push_back(Tensor::Zeros(p.value.shape));
      }
    }
  }
  int64_t reported_ckpt = CheckpointStep();
  const absl::Time loop_start = absl::Now();
  for (int64_t step = start_step_; step < o_.steps; ++step) {
    if (step == o_.signal_at_step && g_.rank() == 0) std::raise(SIGUSR1);
    SUBLET_ASSIGN_OR_RETURN(bool preempt, AgreeOnPreemption());
    if (preempt) {
      if (o_.checkpoint_dir.empty()) return TrainOutcome::kStoppedUnsaved;
      return Finish(step, TrainOutcome::kPreempted);
    }
    const absl::Time t0 = absl::Now();
    const float lr = schedule_.At(step);
    SUBLET_RETURN_IF_ERROR(Step(step));
    Update(step, lr);
    last_tokens_per_s_ = static_cast<double>(o_.global_batch * o_.seq_len) /
                         std::max(1e-9, Seconds(absl::Now() - t0));
    // elapsed_s: the same point of every iteration, so the difference of two
    // lines' is a whole iteration (the agreement, the step and the previous
    // step's save included), where tokens_per_s covers the step alone.
    Log({{"step", step + 1}, {"loss", last_loss_}, {"lr", lr}, {"tokens_per_s", last_tokens_per_s_},
         {"elapsed_s", Seconds(absl::Now() - loop_start)}});
    const int64_t completed = step + 1;
    if (o_.checkpoint_every > 0 && completed % o_.checkpoint_every == 0 && completed < o_.steps) {
      SUBLET_RETURN_IF_ERROR(Save(completed, /*sync=*/false));
    }
    const int64_t ckpt = CheckpointStep();
    if (progress_) {
      progress_->Report(completed, last_loss_, last_tokens_per_s_, ckpt, ckpt != reported_ckpt);
    }
    reported_ckpt = ckpt;
  }
  return Finish(std::max(start_step_, o_.steps), TrainOutcome::kDone);
}

}  // namespace

absl::Status ValidateTrainerOptions(const TrainerOptions& o, int world, int tp) {
  auto bad = [](const std::string& flag, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
  };
  SUBLET_RETURN_IF_ERROR(train::CheckConfig(o.model, tp));
  if (tp < 1 || world % tp != 0) {
    return bad("--tp", absl::StrCat(tp, " does not divide the world size ", world));
  }
  const int64_t dp = world / tp;
  if (o.steps < 0 || o.steps > kMaxSteps) {
    return bad("--steps", absl::StrCat("must be in [0, ", kMaxSteps, "]"));
  }
  if (o.seq_len < 1 || o.seq_len > o.model.max_seq) {
    return bad("--seq-len", absl::StrCat("must be in [1, ", o.model.max_seq, "] for this model"));
  }
  if (o.global_batch > kMaxGlobalBatch) {
    return bad("--global-batch", absl::StrCat("must be at most ", kMaxGlobalBatch));
  }
  if (o.global_batch < 1 || o.global_batch % dp != 0) {
    return bad("--global-batch",
               absl::StrCat(o.global_batch, " does not split over ", dp, " data-parallel ranks"));
  }
  const int64_t share = o.global_batch / dp;
  const int64_t micro = o.micro_batch > 0 ? o.micro_batch : share;
  if (o.micro_batch < 0 || share % micro != 0) {
    return bad("--micro-batch", absl::StrCat(o.micro_batch, " does not divide this rank's ", share,
                                             " sequences"));
  }
  if ((micro * o.seq_len) % tp != 0) {
    return bad("--seq-len", absl::StrCat("micro-batch x seq-len must divide by --tp ", tp));
  }
  if (!(o.lr > 0)) return bad("--lr", "must be positive");
  if (o.checkpoint_every < 0) return bad("--checkpoint-every", "must not be negative");
  if (o.keep < 0) return bad("--keep", "must not be negative");
  if (o.data != "synthetic") {  // reads the file once to check it (names --data)
    SUBLET_RETURN_IF_ERROR(
        train::TextData(o.data, o.seed, o.model.vocab, o.seq_len + 2).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainOutcome> RunTraining(const TrainerOptions& options, ProcessGroups& groups,
                                         PreemptionNotice& notice,
                                         ProgressReporter* progress, const LogLineFn& log_line) {
  SUBLET_RETURN_IF_ERROR(ValidateTrainerOptions(options, groups.size(), groups.tp_size));
  Trainer trainer(options, groups, notice, progress, log_line);
  return trainer.Run();
}

}  // namespace sublet::worker
